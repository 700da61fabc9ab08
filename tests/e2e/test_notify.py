"""Never silent: every exit path of `vigil run` ends in exactly one outcome message."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import textwrap
import time
from pathlib import Path
from urllib.parse import parse_qs, urlparse

from helpers import VIGIL, appending, committed, email_notify, files_job_body, vigil, vigil_json, wait_for_step
from servers import SMTP_PASSWORD, free_port

HOST = socket.gethostname()


def only_message(smtp, job: str = "app"):
    msgs = smtp.wait_for(1)
    time.sleep(0.3)  # a second message would arrive about now: there must be none
    assert len(smtp.messages) == 1, [m["Subject"] for m in smtp.messages]
    return msgs[0]


def assert_failure_mail(msg, step: str, *needles: str) -> None:
    assert msg["Subject"].startswith(f"[vigil] FAILED app@{HOST}: "), msg["Subject"]
    body = msg.get_content()
    assert f"Step:      {step}" in body, body
    for n in needles:
        assert n in msg["Subject"] + body, (n, msg["Subject"], body)
    assert SMTP_PASSWORD not in msg.as_string()
    assert sorted(a.strip() for a in msg["To"].split(",")) == ["oncall@example.test", "ops@example.test"]


def test_source_failure_mails_once(tmp_path, make_job, smtp_server):
    job = make_job(files_job_body(tmp_path / "missing", tmp_path / "backups") + email_notify(smtp_server))
    vigil("run", config=job, check=1)
    msg = only_message(smtp_server)
    assert_failure_mail(msg, "source:app", "files source app", "does not exist")
    assert "Log (last lines):" in msg.get_content()
    assert len(smtp_server.envelopes[0].rcpt_tos) == 2


def test_unwritable_destination_mails_once(tmp_path, make_job, app_tree, smtp_server):
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("a file where the destination's parent should be")
    job = make_job(files_job_body(app_tree, blocker / "backups") + email_notify(smtp_server))
    vigil("run", config=job, check=1)
    assert_failure_mail(only_message(smtp_server), "destination:local", "destination local")


def test_failing_before_hook_mails_once_and_after_hook_runs(tmp_path, make_job, app_tree, smtp_server):
    marker = tmp_path / "after"
    job = make_job(files_job_body(app_tree, tmp_path / "backups") + email_notify(smtp_server) + textwrap.dedent(f"""
        [hooks]
        before = [["sh", "-c", "echo maintenance mode failed >&2; exit 3"]]
        after = [["touch", "{marker}"]]
    """))
    vigil("run", config=job, check=1)
    msg = only_message(smtp_server)
    assert_failure_mail(msg, "hook:before", "status 3", "maintenance mode failed")
    assert marker.exists()
    assert not committed(tmp_path / "backups")


def test_sigterm_mid_run_mails_once(tmp_path, make_job, smtp_server, slow_tree):
    job = make_job(files_job_body(slow_tree, tmp_path / "backups") + email_notify(smtp_server))
    proc = subprocess.Popen([VIGIL, "--config", str(job), "run"], stderr=subprocess.DEVNULL)
    wait_for_step(job, "source:")
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=60) == 1
    assert_failure_mail(only_message(smtp_server), "source:app", "interrupted by SIGTERM")


def test_unexpected_exception_mails_once(tmp_path, make_job, app_tree, smtp_server):
    # A bug nobody anticipated, injected into the real vigil process.
    inject = tmp_path / "inject"
    inject.mkdir()
    (inject / "sitecustomize.py").write_text(textwrap.dedent("""
        import vigil.sources.files as f
        def boom(self, out):
            raise KeyError("injected bug")
        f.FilesSource.backup = boom
    """))
    job = make_job(files_job_body(app_tree, tmp_path / "backups") + email_notify(smtp_server))
    proc = vigil("run", config=job, env={"PYTHONPATH": str(inject)})
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert_failure_mail(only_message(smtp_server), "source:app", "unexpected error", "injected bug")
    [run] = vigil_json("runs", config=job)
    assert run["outcome"] == "failed" and "injected bug" in run["error"]


def test_kill_9_is_mailed_by_the_next_run(tmp_path, make_job, smtp_server, slow_tree):
    job = make_job(files_job_body(slow_tree, tmp_path / "backups") + email_notify(smtp_server))
    proc = subprocess.Popen([VIGIL, "--config", str(job), "run"], stderr=subprocess.DEVNULL)
    killed = wait_for_step(job, "source:")
    proc.kill()
    proc.wait()
    (slow_tree / "huge.sparse").unlink()  # the next runs need not take long
    assert smtp_server.messages == []  # nothing can be said by a killed process
    vigil("run", config=job, check=0)
    msg = only_message(smtp_server)
    assert_failure_mail(msg, "source:app", killed["run_id"], "died")
    vigil("run", config=job, check=0)
    time.sleep(0.3)
    assert len(smtp_server.messages) == 1  # the death is reported once, not by every run


def test_success_mail_when_asked(tmp_path, make_job, app_tree, smtp_server):
    job = make_job(files_job_body(app_tree, tmp_path / "backups")
                   + email_notify(smtp_server, on='["success", "failure"]'))
    vigil("run", config=job, check=0)
    msg = only_message(smtp_server)
    [backup] = committed(tmp_path / "backups")
    assert msg["Subject"].startswith(f"[vigil] OK app@{HOST}: backup {backup.name}")


def test_email_over_implicit_tls(tmp_path, make_job, app_tree, tls_cert):
    from servers import SmtpServer, free_port

    smtps = SmtpServer(port=free_port(), ca_file=tls_cert / "ca.pem", implicit_tls=True)
    smtps.start(tls_cert / "cert.pem", tls_cert / "key.pem")
    try:
        job = make_job(files_job_body(app_tree, tmp_path / "backups")
                       + email_notify(smtps, on='["success"]', tls="ssl = true"))
        vigil("run", config=job, check=0)
        assert only_message(smtps)["Subject"].startswith(f"[vigil] OK app@{HOST}: backup ")
    finally:
        smtps.stop()


def test_skipped_is_sent_only_to_channels_that_ask(tmp_path, make_job, app_tree, smtp_server, http_recorder):
    job = make_job(files_job_body(app_tree, tmp_path / "backups") + email_notify(smtp_server)
                   + textwrap.dedent(f"""
        [[notify]]
        type = "webhook"
        on = ["skipped"]
        url = "{http_recorder.url}/hook"
        [hooks]
        before = [["sleep", "5"]]
    """))
    first = subprocess.Popen([VIGIL, "--config", str(job), "run"], stderr=subprocess.DEVNULL)
    wait_for_step(job, "hook:before")
    vigil("run", config=job, check=75)
    assert first.wait(timeout=60) == 0
    hooks = [r for r in http_recorder.requests if r["path"] == "/hook"]
    assert len(hooks) == 1
    payload = json.loads(hooks[0]["body"])
    assert payload["event"] == "skipped" and payload["outcome"] == "skipped" and "already running" in payload["error"]
    assert smtp_server.messages == []


def test_smtp_down_keeps_exit_code_and_flush_delivers_exactly_once(tmp_path, make_job, tls_cert):
    from servers import SmtpServer

    server = SmtpServer(port=free_port(), ca_file=tls_cert / "ca.pem")  # not started yet: refused
    job = make_job(files_job_body(tmp_path / "missing", tmp_path / "backups") + email_notify(server))
    proc = vigil("run", config=job)
    assert proc.returncode == 1  # the same as with the server up
    assert "kept in the outbox" in proc.stderr
    assert vigil("notify", "flush", config=job).returncode == 1
    server.start(tls_cert / "cert.pem", tls_cert / "key.pem")
    try:
        flushed = vigil("notify", "flush", config=job, check=0)
        assert "delivered 1" in flushed.stdout
        vigil("notify", "flush", config=job, check=0)
        vigil("list", config=job, check=0)  # every command flushes: still nothing twice
        time.sleep(0.3)
        assert len(server.messages) == 1
        assert "does not exist" in server.messages[0]["Subject"]
    finally:
        server.stop()


def test_one_failing_channel_does_not_stop_another(tmp_path, make_job, smtp_server, http_recorder):
    http_recorder.status = 500
    job = make_job(files_job_body(tmp_path / "missing", tmp_path / "backups") + email_notify(smtp_server)
                   + textwrap.dedent(f"""
        [[notify]]
        type = "webhook"
        url = "{http_recorder.url}/broken"
    """))
    proc = vigil("run", config=job, check=1)
    assert "webhook" in proc.stderr and "kept in the outbox" in proc.stderr
    assert len(only_message(smtp_server)["Subject"]) > 0
    assert len([r for r in http_recorder.requests if r["path"] == "/broken"]) == 3  # retried: 5xx is transient


def test_healthchecks_protocol(tmp_path, make_job, app_tree, http_recorder):
    ping = f"{http_recorder.url}/ping/abc"
    job = make_job(files_job_body(app_tree, tmp_path / "backups")
                   + f'[[notify]]\ntype = "healthchecks"\nurl = "{ping}"\n')
    vigil("run", config=job, check=0)
    paths = [urlparse(r["path"]) for r in http_recorder.requests]
    assert [p.path for p in paths] == ["/ping/abc/start", "/ping/abc"]
    rids = {parse_qs(p.query)["rid"][0] for p in paths}
    assert len(rids) == 1  # start and finish are one run on the healthchecks side

    http_recorder.requests.clear()
    bad = make_job(files_job_body(tmp_path / "missing", tmp_path / "backups")
                   + f'[[notify]]\ntype = "healthchecks"\nurl = "{ping}"\n', name="bad")
    vigil("run", config=bad, check=1)
    [start, fail] = http_recorder.requests
    assert urlparse(start["path"]).path == "/ping/abc/start" and urlparse(fail["path"]).path == "/ping/abc/fail"
    [run] = vigil_json("runs", config=bad)
    assert run["run_id"].encode() in fail["body"] and b"does not exist" in fail["body"]
    assert parse_qs(urlparse(start["path"]).query)["rid"] == parse_qs(urlparse(fail["path"]).query)["rid"]


def test_webhook_payload_and_command_channel(tmp_path, make_job, app_tree, http_recorder):
    out = tmp_path / "command-env"
    job = make_job(files_job_body(app_tree, tmp_path / "backups") + textwrap.dedent(f"""
        [[notify]]
        type = "webhook"
        on = ["success"]
        url = "{http_recorder.url}/w"
        headers = {{ Authorization = "Bearer t0ken" }}
        [[notify]]
        type = "command"
        on = ["success"]
        argv = ["sh", "-c", "env | grep ^VIGIL_ > {out}; cat >> {out}"]
    """))
    vigil("run", config=job, check=0)
    [req] = http_recorder.requests
    payload = json.loads(req["body"])
    [run] = vigil_json("runs", config=job)
    assert payload["event"] == "success" and payload["run_id"] == run["run_id"] and payload["job"] == "app"
    assert payload["bytes"] > 0 and payload["backup_id"] == run["run_id"]
    assert req["headers"]["Authorization"] == "Bearer t0ken"
    text = out.read_text()
    assert "VIGIL_EVENT=success" in text and f"VIGIL_RUN_ID={run['run_id']}" in text and "Job:" in text


def test_notify_test_reports_each_channel(tmp_path, make_job, app_tree, smtp_server):
    job = make_job(files_job_body(app_tree, tmp_path / "backups") + email_notify(smtp_server) + textwrap.dedent(f"""
        [[notify]]
        type = "webhook"
        url = "http://127.0.0.1:{free_port()}/nobody-listens"
    """))
    proc = vigil("notify", "test", config=job)
    assert proc.returncode == 1
    assert "email email" in proc.stdout and "OK" in proc.stdout and "FAILED" in proc.stdout
    assert smtp_server.wait_for(1)[0]["Subject"].startswith(f"[vigil] TEST app@{HOST}")


def test_password_never_in_logs_or_journal(tmp_path, make_job, smtp_server):
    job = make_job(files_job_body(tmp_path / "missing", tmp_path / "backups")
                   + email_notify(smtp_server, on='["success", "failure"]'))
    proc = vigil("-v", "run", config=job, check=1)
    only_message(smtp_server)
    assert SMTP_PASSWORD not in proc.stdout + proc.stderr
    for f in (tmp_path / "state").rglob("*"):
        if f.is_file():
            assert SMTP_PASSWORD.encode() not in f.read_bytes(), f


def test_apprise_channel(tmp_path, make_job, http_recorder):
    job = make_job(files_job_body(tmp_path / "missing", tmp_path / "backups") + textwrap.dedent(f"""
        [[notify]]
        type = "apprise"
        urls = ["json://127.0.0.1:{http_recorder.port}/apprise"]
    """))
    vigil("run", config=job, check=1)
    [req] = [r for r in http_recorder.requests if r["path"] == "/apprise"]
    payload = json.loads(req["body"])
    assert payload["title"].startswith(f"[vigil] FAILED app@{HOST}: files source app")
    assert "Step:      source:app" in payload["message"]


def test_hook_timeout_fails_the_run_and_is_mailed(tmp_path, make_job, app_tree, smtp_server):
    job = make_job(files_job_body(app_tree, tmp_path / "backups") + email_notify(smtp_server)
                   + '[hooks]\nbefore = [["sleep", "30"]]\ntimeout = "1s"\n')
    start = time.monotonic()
    vigil("run", config=job, check=1)
    assert time.monotonic() - start < 20
    assert_failure_mail(only_message(smtp_server), "hook:before", "timed out after 1s")
    assert not committed(tmp_path / "backups")


def cron_env() -> dict[str, str]:
    """What cron gives a job: a bare PATH and HOME, none of the shell's variables."""
    return {"PATH": "/usr/bin:/bin", "HOME": os.environ.get("HOME", "/root"), "LANG": "C.UTF-8"}


def test_env_file_feeds_password_env_in_a_cron_like_environment(tmp_path, make_job, app_tree, smtp_server):
    head, _, tail = SMTP_PASSWORD.partition("-")
    env_file = tmp_path / "secrets.env"
    env_file.write_text(textwrap.dedent(f"""\
        # read by vigil itself, never exported
        PASSWORD_HEAD={head}
        VIGIL_TEST_SMTP_PASSWORD="${{PASSWORD_HEAD}}-{tail}"   # quoted, with a reference
    """))
    env_file.chmod(0o600)
    seen = tmp_path / "hook-env"
    job = make_job('env_file = "secrets.env"\n' + files_job_body(app_tree, tmp_path / "backups")
                   + email_notify(smtp_server, on='["success"]')
                   + f'[hooks]\nbefore = [["sh", "-c", "env > {seen}"]]\n')
    proc = subprocess.run([VIGIL, "--config", str(job), "run"], env=cron_env(), capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
    msg = only_message(smtp_server)  # the server accepts only SMTP_PASSWORD: the env_file's value logged in
    assert msg["Subject"].startswith("[vigil] OK app@")
    assert SMTP_PASSWORD not in seen.read_text() and "VIGIL_TEST_SMTP_PASSWORD" not in seen.read_text()


def test_password_env_set_nowhere_says_where_it_looked(tmp_path, make_job, app_tree, smtp_server):
    (tmp_path / "secrets.env").write_text("OTHER=1\n")
    job = make_job('env_file = "secrets.env"\n' + files_job_body(app_tree, tmp_path / "backups")
                   + email_notify(smtp_server, on='["success"]'))
    proc = subprocess.run([VIGIL, "--config", str(job), "run"], env=cron_env(), capture_output=True, text=True,
                          timeout=120)
    assert "password_env: environment variable VIGIL_TEST_SMTP_PASSWORD is set neither in the environment " \
           f"nor in env_file {tmp_path / 'secrets.env'}" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_a_name_that_is_not_utf8_reaches_every_channel_escaped(tmp_path, make_job, smtp_server, http_recorder):
    src = tmp_path / "src"
    src.mkdir()
    (src / "ok.txt").write_text("fine\n")
    # Bytes that are no UTF-8: a Latin-1 "é", as an old upload or unzip leaves it.
    bad = Path(os.fsdecode(os.fsencode(src) + b"/caf\xe9.log"))
    bad.write_bytes(b"x" * (15 << 20))  # read whole and slow enough that every read sees appends
    out = tmp_path / "command.out"
    job = make_job(files_job_body(src, tmp_path / "backups")
                   + email_notify(smtp_server, on='["success", "failure"]') + textwrap.dedent(f"""
        [[notify]]
        type = "webhook"
        url = "{http_recorder.url}/hook"
        on = ["success", "failure"]
        [[notify]]
        type = "command"
        on = ["success", "failure"]
        argv = ["sh", "-c", "printenv VIGIL_WARNINGS > {out}; cat >> {out}"]
    """))
    with appending(bad):
        proc = vigil("run", config=job, check=0)
    shown = "caf\\xe9.log"  # the undecodable byte as the four characters \xe9
    assert "Traceback" not in proc.stderr and "Logging error" not in proc.stderr
    assert shown in proc.stderr
    [run] = vigil_json("runs", config=job)
    assert run["outcome"] == "success" and any(shown in w and "changed" in w for w in run["warnings"])
    [backup] = committed(tmp_path / "backups")
    assert any(shown in w for w in json.loads((backup / "manifest.json").read_text())["warnings"])
    assert shown in (tmp_path / "state/logs/app" / f"{run['run_id']}.log").read_text()
    mail = smtp_server.wait_for(1)[0]
    assert shown in mail.get_content()
    payload = json.loads(http_recorder.requests[0]["body"])
    assert any(shown in w for w in payload["warnings"])
    assert out.read_text().count(shown) >= 2  # in VIGIL_WARNINGS and in the body on stdin
    flushed = vigil("notify", "flush", config=job, check=0)
    assert "still queued 0" in flushed.stdout


def test_started_by_reaches_every_channel(tmp_path, make_job, app_tree, smtp_server, http_recorder):
    # Two mails naming two different starters are how a duplicate schedule shows itself.
    out = tmp_path / "command-env"
    job = make_job(files_job_body(app_tree, tmp_path / "backups") + email_notify(smtp_server, on='["success"]')
                   + textwrap.dedent(f"""
        [[notify]]
        type = "webhook"
        on = ["success"]
        url = "{http_recorder.url}/w"
        [[notify]]
        type = "healthchecks"
        url = "{http_recorder.url}/ping/abc"
        [[notify]]
        type = "command"
        on = ["success"]
        argv = ["sh", "-c", "env | grep ^VIGIL_STARTED_BY > {out}"]
    """))
    script = f"{VIGIL} --config {job} run; echo ran"  # a second command: sh stays the parent
    subprocess.run(["sh", "-c", script], check=True, capture_output=True, timeout=120)
    starter = f"sh -c {script}"
    assert f"Started by: {starter}" in only_message(smtp_server).get_content().splitlines()
    [hook] = [r for r in http_recorder.requests if r["path"] == "/w"]
    payload = json.loads(hook["body"])
    assert payload["started_by"] == starter and payload["started_by_chain"][0] == starter
    assert len(payload["started_by_chain"]) > 1  # and whoever ran the shell
    [ping] = [r for r in http_recorder.requests if urlparse(r["path"]).path == "/ping/abc"]
    assert f"started by: {starter}\n".encode() in ping["body"]
    assert f"VIGIL_STARTED_BY={starter}\n" in out.read_text()
    [run] = vigil_json("runs", config=job)
    assert run["started_by"] == starter
