"""vigil health as monitoring sees it: exit codes, formats, notifications on transitions."""

from __future__ import annotations

import json
import subprocess
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from helpers import VIGIL, committed, email_notify, files_job_body, flip_byte, vigil, wait_for_step


def test_fresh_then_too_old(tmp_path, make_job, app_tree):
    job = make_job(files_job_body(app_tree, tmp_path / "backups") + '[health]\nmax_age = "3s"\n')
    assert vigil("health", config=job).returncode == 2  # no backup yet
    vigil("run", config=job, check=0)
    ok = vigil("health", "--format", "json", config=job, check=0)
    data = json.loads(ok.stdout)
    assert data["status"] == "OK" and data["jobs"][0]["last_backup_bytes"] > 0
    time.sleep(3.5)
    old = vigil("health", "--format", "nagios", config=job)
    assert old.returncode == 2 and old.stdout.startswith("VIGIL CRITICAL - app: destination local: newest backup")


def test_failed_last_run_is_critical_and_works_without_journal(tmp_path, make_job, app_tree):
    dest = tmp_path / "backups"
    job = make_job(files_job_body(app_tree, dest))
    vigil("run", config=job, check=0)
    make_job(files_job_body(tmp_path / "gone", dest))
    vigil("run", config=job, check=1)
    crit = vigil("health", config=job)
    assert crit.returncode == 2 and "failed at step source:app" in crit.stdout
    # The server's disk is lost with its journal: the destinations still tell the truth.
    fresh = make_job(files_job_body(app_tree, dest), state_dir=tmp_path / "new-state")
    assert vigil("health", config=fresh).returncode == 0


def test_three_starts_at_once_warn_and_name_the_starters(tmp_path, make_job, app_tree):
    job = make_job(files_job_body(app_tree, tmp_path / "backups") + '[hooks]\nbefore = [["sleep", "4"]]\n')
    cmd = f"{VIGIL} --config {job} run"
    starters = [["sh", "-c", f"{cmd}; true"], ["bash", "-c", f"{cmd}; true"],
                ["python3", "-c", f"import subprocess; subprocess.run({cmd.split()!r})"]]
    procs = [subprocess.Popen(s, stderr=subprocess.DEVNULL) for s in starters]
    for p in procs:
        p.wait(timeout=60)
    h = vigil("health", config=job)
    assert h.returncode == 1, h.stdout
    assert "3 attempts overlapped" in h.stdout
    assert "sh -c" in h.stdout and "bash -c" in h.stdout and "python3 -c" in h.stdout
    # A later run that starts after the others ended is not a duplicate, and the warning stays visible.
    vigil("run", config=job, check=0)
    assert vigil("health", config=job).stdout.count("overlapped") == 1


def test_health_notify_sends_each_transition_once(tmp_path, make_job, app_tree, smtp_server):
    dest = tmp_path / "backups"
    bad = make_job(files_job_body(tmp_path / "gone", dest) + email_notify(smtp_server, on='["unhealthy", "recovered"]'))
    vigil("run", config=bad, check=1)
    assert vigil("health", "--notify", config=bad).returncode == 2
    assert vigil("health", "--notify", config=bad).returncode == 2
    msgs = smtp_server.wait_for(1)
    time.sleep(0.3)
    assert len(msgs) == 1 and msgs[0]["Subject"].startswith("[vigil] UNHEALTHY app@")
    assert "failed at step source:app" in msgs[0].get_content()
    good = make_job(files_job_body(app_tree, dest) + email_notify(smtp_server, on='["unhealthy", "recovered"]'))
    vigil("run", config=good, check=0)
    assert vigil("health", "--notify", config=good).returncode == 0
    vigil("health", "--notify", config=good, check=0)
    smtp_server.wait_for(2)
    time.sleep(0.3)
    assert len(smtp_server.messages) == 2
    assert smtp_server.messages[1]["Subject"].startswith("[vigil] RECOVERED app@")


def test_metrics_textfile_is_written_after_each_run(tmp_path, make_job, app_tree):
    prom = tmp_path / "node_exporter" / "vigil.prom"
    job = make_job(files_job_body(app_tree, tmp_path / "backups") + f'[metrics]\ntextfile = "{prom}"\n')
    vigil("run", config=job, check=0)
    text = prom.read_text()
    assert 'vigil_health_status{job="app"} 0' in text and "vigil_last_backup_bytes" in text


def test_unloadable_config_is_unknown(tmp_path):
    bad = tmp_path / "x.toml"
    bad.write_text("nonsense = [")
    proc = vigil("health", "--format", "nagios", config=bad)
    assert proc.returncode == 3 and proc.stdout.startswith("VIGIL UNKNOWN - ")


def test_health_usage_errors_are_unknown_not_critical(tmp_path, make_job, app_tree):
    # A monitoring system reads the exit code: a typo in the check's command
    # line must not page anyone as CRITICAL (2).
    job = make_job(files_job_body(app_tree, tmp_path / "backups"))
    for args in (["--format", "xml"], ["--bogus"], ["no-such-job"]):
        proc = vigil("health", *args, config=job)
        assert proc.returncode == 3, (args, proc.stderr)
        assert "Traceback" not in proc.stderr
    assert vigil("list", "--bogus", config=job).returncode == 2  # other commands keep exit 2


def backdate(backup: Path, started: datetime) -> Path:
    """Make a real backup look as if it had started at `started`: manifest and directory name agree."""
    manifest = json.loads((backup / "manifest.json").read_text())
    new_id = f"{started:%Y%m%dT%H%M%SZ}-{manifest['id'].rsplit('-', 1)[1]}"
    manifest.update(id=new_id, started_at=started.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
                    finished_at=(started + timedelta(seconds=2)).isoformat(timespec="milliseconds").replace("+00:00", "Z"))
    (backup / "manifest.json").write_text(json.dumps(manifest, indent=2))
    return backup.rename(backup.with_name(new_id))


def daily_at(t: datetime) -> str:
    return f'[schedule]\ncron = "{t.minute} {t.hour} * * *"\n'


def test_a_missed_scheduled_backup_is_critical_once_grace_has_passed(tmp_path, make_job, app_tree):
    dest, utc = tmp_path / "backups", {"TZ": "UTC"}  # cron reads the schedule in the host's zone
    now = datetime.now(UTC).replace(second=0, microsecond=0)
    missed = now - timedelta(hours=3, minutes=5)  # today's run, due 3h05m ago, never happened
    job = make_job(files_job_body(app_tree, dest) + daily_at(missed))
    vigil("run", config=job, check=0)
    [backup] = committed(dest)
    backup = backdate(backup, missed - timedelta(days=1) + timedelta(seconds=5))  # yesterday's run
    crit = vigil("health", config=job, env=utc)
    assert crit.returncode == 2, crit.stdout
    assert f"the backup due at {missed:%Y-%m-%d %H:%M:%S} UTC is missing (3h5m late, grace 3h;" in crit.stdout

    due = now - timedelta(hours=2, minutes=50)  # due 2h50m ago: still within grace
    make_job(files_job_body(app_tree, dest) + daily_at(due))
    backdate(backup, due - timedelta(days=1) + timedelta(seconds=5))
    assert vigil("health", config=job, env=utc).returncode == 0
    make_job(files_job_body(app_tree, dest) + daily_at(due) + '[health]\ngrace = "2h"\n')
    late = vigil("health", "--format", "nagios", config=job, env=utc)
    assert late.returncode == 2 and "is missing (2h50m late, grace 2h;" in late.stdout


def test_a_damaged_newest_backup_is_critical_until_a_newer_one_exists(tmp_path, make_job, app_tree):
    dest = tmp_path / "backups"
    job = make_job(files_job_body(app_tree, dest))
    vigil("run", config=job, check=0)
    vigil("verify", config=job, check=0)
    assert vigil("health", config=job).returncode == 0
    [backup] = committed(dest)
    flip_byte(backup / "files-app.tar.zst")
    vigil("verify", config=job, check=1)
    crit = vigil("health", config=job)
    assert crit.returncode == 2
    assert f"destination local: newest backup {backup.name} was found damaged by verify at " in crit.stdout
    assert "checksum mismatch" in crit.stdout
    vigil("run", config=job, check=0)
    assert vigil("health", config=job).returncode == 0, "a newer good backup clears it"


def test_the_run_after_a_killed_one_is_no_duplicate(tmp_path, make_job, slow_tree):
    job = make_job(files_job_body(slow_tree, tmp_path / "backups"))
    proc = subprocess.Popen([VIGIL, "--config", str(job), "run"], stderr=subprocess.DEVNULL)
    wait_for_step(job, "source:")
    proc.kill()
    proc.wait()
    (slow_tree / "huge.sparse").unlink()
    vigil("run", config=job, check=0)  # finds the killed run dead, after it started
    h = vigil("health", config=job)
    assert h.returncode == 0 and "overlapped" not in h.stdout, h.stdout


def test_a_journal_from_before_verify_results_is_upgraded_in_place(tmp_path, make_job, app_tree):
    import sqlite3

    dest = tmp_path / "backups"
    job = make_job(files_job_body(app_tree, dest))
    vigil("run", config=job, check=0)
    db = sqlite3.connect(tmp_path / "state" / "journal.db")
    db.executescript("DROP TABLE verifications; PRAGMA user_version = 2;")  # as an older vigil left it
    db.close()
    [backup] = committed(dest)
    flip_byte(backup / "files-app.tar.zst")
    vigil("verify", config=job, check=1)
    assert vigil("health", config=job).returncode == 2
    db = sqlite3.connect(tmp_path / "state" / "journal.db")
    assert db.execute("PRAGMA user_version").fetchone()[0] == 3
    [(ok, reason)] = db.execute("SELECT ok, reason FROM verifications").fetchall()
    assert ok == 0 and "checksum mismatch" in reason
