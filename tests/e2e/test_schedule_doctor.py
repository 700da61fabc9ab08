"""The founding incident as a file tree: one job scheduled three times."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
from helpers import VIGIL, cron_sh, files_job_body, systemd_reading, vigil

LEGACY = "/var/www/api-gateway/scripts/backup-run.sh"


def incident_root(root: Path) -> Path:
    (root / "etc/cron.d").mkdir(parents=True)
    (root / "var/spool/cron/crontabs").mkdir(parents=True)
    (root / "etc/systemd/system/timers.target.wants").mkdir(parents=True)
    (root / "etc/crontab").write_text("SHELL=/bin/sh\n17 * * * * root cd / && run-parts --report /etc/cron.hourly\n")
    (root / "etc/cron.d/backup").write_text(f"# nightly\nMAILTO=ops@example.com\n0 19 * * * root {LEGACY}\n")
    (root / "etc/cron.d/backup").chmod(0o644)
    (root / "var/spool/cron/crontabs/root").write_text(f"0 19 * * * {LEGACY} >> /var/log/backup.log 2>&1\n")
    (root / "etc/systemd/system/backup.timer").write_text(
        "[Unit]\nDescription=nightly backup\n[Timer]\nOnCalendar=*-*-* 19:00:00\nPersistent=true\n"
        "[Install]\nWantedBy=timers.target\n")
    (root / "etc/systemd/system/backup.service").write_text(f"[Service]\nType=oneshot\nExecStart={LEGACY}\n")
    os.symlink("../backup.timer", root / "etc/systemd/system/timers.target.wants/backup.timer")
    return root


def job_for(make_job, tmp_path, app_tree, extra: str = "") -> Path:
    return make_job(f'legacy_commands = ["{LEGACY}"]\n' + files_job_body(app_tree, tmp_path / "backups")
                    + '[schedule]\ncron = "0 19 * * *"\n' + extra)


def test_doctor_finds_the_three_schedules_of_the_incident(tmp_path, make_job, app_tree):
    root = incident_root(tmp_path / "root")
    job = job_for(make_job, tmp_path, app_tree)
    proc = vigil("doctor", "--root", str(root), config=job)
    assert proc.returncode == 1
    out = proc.stdout
    assert "scheduled 3 times (cron and systemd timer both)" in out
    for where in ("/etc/cron.d/backup:3", "/var/spool/cron/crontabs/root:1", "/etc/systemd/system/backup.timer"):
        assert where in out, where
    assert "fire at" in out  # all three fire at 19:00
    assert "run-parts" not in out  # unrelated entries are not reported


def test_cron_file_that_cron_ignores_is_a_problem(tmp_path, make_job, app_tree):
    root = tmp_path / "root"
    (root / "etc/cron.d").mkdir(parents=True)
    (root / "etc/cron.d/vigil.backup").write_text("0 3 * * * root /usr/local/bin/vigil run app\n")
    (root / "etc/cron.d/vigil.backup").chmod(0o644)
    job = job_for(make_job, tmp_path, app_tree)
    out = vigil("doctor", "--root", str(root), config=job).stdout
    assert "/etc/cron.d/vigil.backup never runs" in out and "not scheduled" in out


def test_schedule_install_twice_refuses_and_remove_restores(tmp_path, make_job, app_tree):
    root = tmp_path / "root"
    (root / "etc").mkdir(parents=True)
    job = job_for(make_job, tmp_path, app_tree)
    before = sorted(p for p in root.rglob("*"))
    first = vigil("schedule", "install", "app", "--root", str(root), config=job, check=0)
    assert "systemctl" in first.stdout
    timer = (root / "etc/systemd/system/vigil-app.timer").read_text()
    service = (root / "etc/systemd/system/vigil-app.service").read_text()
    assert "OnCalendar=*-*-* 19:00:00" in timer and "Persistent=true" in timer
    assert "Type=oneshot" in service and "Nice=10" in service and "IOSchedulingClass=idle" in service
    assert "OnFailure=vigil-app-health.service" in service
    assert "OnCalendar=*:0/15" in (root / "etc/systemd/system/vigil-app-health.timer").read_text()
    snapshot = {p: p.read_bytes() for p in root.rglob("*") if p.is_file()}
    second = vigil("schedule", "install", "app", "--root", str(root), config=job)
    assert second.returncode == 1 and "already scheduled" in second.stderr
    assert {p: p.read_bytes() for p in root.rglob("*") if p.is_file()} == snapshot
    assert "1 schedule(s)" in vigil("schedule", "show", "app", "--root", str(root), config=job, check=0).stdout
    doctor = vigil("doctor", "--root", str(root), config=job).stdout
    assert "scheduled once" in doctor
    vigil("schedule", "remove", "app", "--root", str(root), config=job, check=0)
    assert sorted(p for p in root.rglob("*") if p.is_file()) == [p for p in before if p.is_file()]


def test_schedule_install_cron_file(tmp_path, make_job, app_tree):
    root = tmp_path / "root"
    (root / "etc").mkdir(parents=True)
    job = job_for(make_job, tmp_path, app_tree)
    vigil("schedule", "install", "app", "--cron", "--root", str(root), config=job, check=0)
    text = (root / "etc/cron.d/vigil-app").read_text()
    assert "0 19 * * * root" in text and " run app" in text and "health --notify app" in text
    # What install wrote, the audit finds: exactly once, in a file name cron accepts.
    out = vigil("doctor", "--root", str(root), config=job).stdout
    assert "scheduled once" in out and "never runs" not in out


def test_doctor_flags_literal_secret_in_readable_file(tmp_path, make_job, app_tree):
    job = job_for(make_job, tmp_path, app_tree, '[[notify]]\ntype = "email"\npassword = "hunter2"\n'
                  'username = "u"\nfrom = "a@b.c"\nto = ["ops@b.c"]\n')
    job.chmod(0o644)
    out = vigil("doctor", "--root", str(tmp_path / "empty-root"), config=job).stdout
    assert "PROBLEM  secrets: notify email: literal password" in out and "chmod 600" in out
    assert "hunter2" not in out


def test_doctor_flags_secret_files_others_can_read(tmp_path, make_job, app_tree):
    phrase, smtp_pw = tmp_path / "passphrase", tmp_path / "smtp-password"
    phrase.write_text("a long random passphrase\n")
    smtp_pw.write_text("hunter2\n")
    phrase.chmod(0o644)
    smtp_pw.chmod(0o640)
    job = job_for(make_job, tmp_path, app_tree,
                  f'[[notify]]\ntype = "email"\npassword_file = "{smtp_pw}"\nusername = "u"\nfrom = "a@b.c"\n'
                  f'to = ["ops@b.c"]\n[encryption]\npassphrase_file = "{phrase}"\n')
    job.chmod(0o600)
    proc = vigil("doctor", "--root", str(tmp_path / "empty-root"), config=job)
    assert proc.returncode == 1
    assert f"encryption: passphrase_file {phrase} is readable by group or others" in proc.stdout
    assert f"notify email: password_file {smtp_pw} is readable by group or others" in proc.stdout
    assert "hunter2" not in proc.stdout and "long random" not in proc.stdout
    phrase.chmod(0o600)
    smtp_pw.chmod(0o600)
    out = vigil("doctor", "--root", str(tmp_path / "empty-root"), config=job).stdout
    assert "readable by group or others" not in out and "no literal or exposed secrets" in out


@pytest.mark.parametrize("dsn", ["postgresql://backup:pg-Secret-1@127.0.0.1:1/app",
                                 "host=127.0.0.1 port=1 dbname=app user=backup password='pg-Secret-1'"])
def test_doctor_flags_password_in_dsn_and_credential_headers(tmp_path, make_job, app_tree, dsn):
    job = job_for(make_job, tmp_path, app_tree,
                  f'[[source]]\ntype = "postgres"\nname = "db"\ndsn = "{dsn}"\n'
                  '[[notify]]\ntype = "webhook"\nurl = "https://hooks.example.test/x"\n'
                  '[notify.headers]\nAuthorization = "Bearer tok-Secret-2"\nX-Api-Key = "key-Secret-3"\n'
                  'Content-Type = "application/json"\n')
    job.chmod(0o644)
    proc = vigil("doctor", "--root", str(tmp_path / "empty-root"), config=job)
    assert proc.returncode == 1
    out = proc.stdout
    assert "PROBLEM  secrets: source db: password in dsn" in out
    assert "PROBLEM  secrets: notify webhook: header Authorization holds a credential" in out
    assert "PROBLEM  secrets: notify webhook: header X-Api-Key holds a credential" in out
    assert "Content-Type" not in out and "chmod 600" in out
    assert not any(s in out for s in ("pg-Secret-1", "tok-Secret-2", "key-Secret-3"))

    job.chmod(0o600)  # only the owner reads it: the header is where it must be, the dsn could do better
    out = vigil("doctor", "--root", str(tmp_path / "empty-root"), config=job).stdout
    assert "WARNING  secrets: source db: password in dsn" in out and "header" not in out


def test_doctor_warns_about_a_readable_env_file(tmp_path, make_job, app_tree):
    env_file = tmp_path / ".env"
    env_file.write_text("SMTP_PASSWORD=hunter2\n")
    env_file.chmod(0o640)
    job = job_for(make_job, tmp_path, app_tree, "").read_text()
    path = tmp_path / "app.toml"
    path.write_text(f'env_file = "{env_file}"\n' + job)
    path.chmod(0o600)
    out = vigil("doctor", "--root", str(tmp_path / "empty-root"), config=path).stdout
    assert f"WARNING  secrets: env_file {env_file} is readable by group or others (mode 0640)" in out
    assert "PROBLEM  secrets" not in out and "hunter2" not in out
    env_file.chmod(0o600)
    out = vigil("doctor", "--root", str(tmp_path / "empty-root"), config=path).stdout
    assert "env_file" not in out and "no literal or exposed secrets" in out


# --- what install writes runs the vigil that installed it, with the config as one argument ---

ODD_DIR = "my jobs 50% $HOME;touch PWNED;# 'q' \"dq\" back\\slash"


def odd_job(tmp_path: Path, app_tree: Path, extra: str = "") -> Path:
    d = tmp_path / ODD_DIR
    d.mkdir()
    job = d / "app.toml"
    job.write_text(f'name = "app"\nstate_dir = "{tmp_path / "state"}"\n'
                   + files_job_body(app_tree, tmp_path / "backups") + '[schedule]\ncron = "0 19 * * *"\n' + extra)
    return job


def linked_vigil(tmp_path: Path) -> Path:
    """The installed vigil, reached through a directory with a space: install must name this path."""
    from helpers import VIGIL

    bindir = tmp_path / "venv bin"
    bindir.mkdir()
    (bindir / "vigil").symlink_to(VIGIL)
    return bindir / "vigil"


def fake_vigil(path: Path, record: Path) -> None:
    path.unlink()
    path.write_text(f"#!/bin/sh\nfor a in \"$@\"; do printf '%s\\0' \"$a\"; done > '{record}'\n")
    path.chmod(0o755)


def install(vigil_path: Path, job: Path, root: Path, *flags: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(vigil_path), "--config", str(job), "schedule", "install", "app", "--root", str(root),
                           *flags], capture_output=True, text=True)


def test_cron_line_runs_this_vigil_with_the_config_as_one_argument(tmp_path, app_tree):
    job = odd_job(tmp_path, app_tree, 'verify_every = "7d"\n')
    vigil_path = linked_vigil(tmp_path)
    root = tmp_path / "root"
    proc = install(vigil_path, job, root, "--cron")
    assert proc.returncode == 0, proc.stderr
    lines = [ln for ln in (root / "etc/cron.d/vigil-app").read_text().splitlines() if ln[:1].isdigit() or ln[:1] == "*"]
    assert len(lines) == 3  # backup, health, deep verify
    record = tmp_path / "argv"
    fake_vigil(vigil_path, record)
    home = tmp_path / "home"
    home.mkdir()
    seen = []
    for line in lines:
        command = line.split(None, 6)[6]  # 5 time fields, the user, then the command
        assert line.split()[5] == "root"
        subprocess.run(["sh", "-c", cron_sh(command)], cwd=home, check=True,
                       env={"PATH": "/usr/bin:/bin", "HOME": str(home)})
        seen.append([w.decode() for w in record.read_bytes().split(b"\0")[:-1]])
    assert seen == [["--config", str(job), "run", "app"], ["--config", str(job), "health", "--notify", "app"],
                    ["--config", str(job), "verify", "--deep", "app"]]
    assert not list(home.rglob("PWNED")) and not list(tmp_path.rglob("PWNED"))


def test_systemd_units_run_this_vigil_with_the_config_as_one_argument(tmp_path, app_tree):
    job = odd_job(tmp_path, app_tree, 'verify_every = "1d"\n')
    vigil_path = linked_vigil(tmp_path)
    root = tmp_path / "root"
    proc = install(vigil_path, job, root)
    assert proc.returncode == 0, proc.stderr
    assert "vigil-app-verify.timer" in proc.stdout
    units = root / "etc/systemd/system"
    argv = {}
    for name in ("vigil-app.service", "vigil-app-health.service", "vigil-app-verify.service"):
        (line,) = [ln for ln in (units / name).read_text().splitlines() if ln.startswith("ExecStart=")]
        argv[name] = systemd_reading(line.removeprefix("ExecStart="))
    assert argv == {"vigil-app.service": [str(vigil_path), "--config", str(job), "run", "app"],
                    "vigil-app-health.service": [str(vigil_path), "--config", str(job), "health", "--notify", "app"],
                    "vigil-app-verify.service": [str(vigil_path), "--config", str(job), "verify", "--deep", "app"]}
    assert "OnCalendar=*-*-* 07:30:00" in (units / "vigil-app-verify.timer").read_text()
    assert shutil.which("systemd-analyze"), "scripts/install-system-deps.sh installs systemd"
    for name in ("vigil-app.service", "vigil-app-verify.service"):
        check = subprocess.run(["systemd-analyze", "verify", str(units / name)], capture_output=True, text=True,
                               env={**os.environ, "SYSTEMD_UNIT_PATH": f"{units}:"})
        assert check.returncode == 0, check.stderr
    assert not list(tmp_path.rglob("PWNED"))
    # Read back: the quoted config is this job's, the verify schedule is seen, remove takes all.
    show = vigil("schedule", "show", "app", "--root", str(root), config=job, check=0).stdout
    assert "app: 1 schedule(s)" in show and "app verify: 1 schedule(s)" in show
    doctor = vigil("doctor", "--root", str(root), config=job).stdout
    assert "scheduled once" in doctor and "deep verify scheduled" in doctor and "does not exist" not in doctor
    vigil("schedule", "remove", "app", "--root", str(root), config=job, check=0)
    assert not list(units.iterdir())


def test_doctor_matches_schedules_by_config_path(tmp_path, app_tree):
    """Two configs define a job "app"; the one installed from "my jobs" is not the other's."""
    job = odd_job(tmp_path, app_tree)
    root = tmp_path / "root"
    assert install(Path(VIGIL), job, root, "--cron").returncode == 0
    other_dir = tmp_path / "other jobs"
    other_dir.mkdir()
    other = other_dir / "app.toml"
    other.write_text(job.read_text())
    assert "scheduled once" in vigil("doctor", "--root", str(root), config=job).stdout
    assert "job app is not scheduled" in vigil("doctor", "--root", str(root), config=other).stdout
    # The same for the directory form of --config.
    assert "scheduled once" in vigil("doctor", "--root", str(root), config=job.parent).stdout


def test_doctor_reports_a_schedule_whose_vigil_or_config_is_gone(tmp_path, make_job, app_tree):
    job = make_job(files_job_body(app_tree, tmp_path / "backups") + '[schedule]\ncron = "0 19 * * *"\n'
                   '[retention]\nkeep_last = 3\n[[notify]]\ntype = "command"\nargv = ["true"]\n')
    vigil("run", config=job, check=0)
    root = tmp_path / "root"
    (root / "etc/cron.d").mkdir(parents=True)
    cron = root / "etc/cron.d/vigil-app"
    cron.write_text(f"0 19 * * * root {VIGIL} --config '{job}' run app\n")
    cron.chmod(0o644)
    good = vigil("doctor", "--root", str(root), config=job)
    assert good.returncode == 0, good.stdout
    cron.write_text(f"0 19 * * * root /nonexistent/bin/vigil --config '{job}' run app\n")
    bad = vigil("doctor", "--root", str(root), config=job)
    assert bad.returncode == 1
    assert "/etc/cron.d/vigil-app:1: vigil /nonexistent/bin/vigil does not exist" in bad.stdout
    cron.write_text(f"0 19 * * * root {VIGIL} --config '{tmp_path}/gone dir/app.toml' run app\n")
    bad = vigil("doctor", "--root", str(root), config=job)
    assert bad.returncode == 1 and f"config {tmp_path}/gone dir/app.toml does not exist" in bad.stdout


def test_timer_with_both_day_fields_fires_on_either_and_doctor_reads_every_line(tmp_path, make_job, app_tree):
    job = make_job(files_job_body(app_tree, tmp_path / "backups") + '[schedule]\ncron = "0 3 1 * MON"\n')
    root = tmp_path / "root"
    vigil("schedule", "install", "app", "--root", str(root), config=job, check=0)
    timer = (root / "etc/systemd/system/vigil-app.timer").read_text()
    assert "OnCalendar=*-*-01 03:00:00\nOnCalendar=Mon *-*-* 03:00:00\n" in timer
    assert "*-*-01 03:00:00; Mon *-*-* 03:00:00" in vigil("schedule", "show", "app", "--root", str(root),
                                                         config=job, check=0).stdout
    # A second schedule on Mondays at 03:00 clashes with the timer's second OnCalendar= line.
    (root / "etc/cron.d").mkdir()
    (root / "etc/cron.d/extra").write_text(f"0 3 * * 1 root {VIGIL} --config {job} run app\n")
    (root / "etc/cron.d/extra").chmod(0o644)
    out = vigil("doctor", "--root", str(root), config=job).stdout
    assert "scheduled 2 times" in out and "both fire at Mon 03:00" in out


@pytest.mark.parametrize("cron,words", [
    ("0 0 L * *", "'L' (last day)"),
    ("0 0 * * 1#2", "'#' (nth weekday)"),
    ("0 3 * * * 30", "give 5 fields"),
    ("0 0 30 2 *", "never fires"),
])
def test_cron_expression_no_timer_can_express_is_refused_at_load(tmp_path, make_job, app_tree, cron, words):
    job = make_job(files_job_body(app_tree, tmp_path / "backups") + f'[schedule]\ncron = "{cron}"\n')
    proc = vigil("list", config=job)
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0 and f"{job}: schedule.cron:" in proc.stderr and words in proc.stderr
    assert "Traceback" not in proc.stderr


def test_verify_every_that_cron_cannot_repeat_is_refused(tmp_path, make_job, app_tree):
    job = make_job(files_job_body(app_tree, tmp_path / "backups") + '[schedule]\ncron = "0 1 * * *"\n'
                   'verify_every = "3d"\n')
    proc = vigil("list", config=job)
    assert proc.returncode == 2 and f"{job}: schedule.verify_every:" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_doctor_warns_when_verify_every_has_no_schedule(tmp_path, make_job, app_tree):
    job = make_job(files_job_body(app_tree, tmp_path / "backups") + '[schedule]\ncron = "0 1 * * *"\n'
                   'verify_every = "7d"\n')
    out = vigil("doctor", "--root", str(tmp_path / "empty-root"), config=job).stdout
    assert "WARNING  schedule: schedule.verify_every is set but nothing runs `vigil verify --deep app`" in out


def test_doctor_flags_a_state_dir_others_can_write(tmp_path, make_job, app_tree):
    job = job_for(make_job, tmp_path, app_tree, "")
    job.chmod(0o600)
    vigil("run", config=job, check=0)
    locks = tmp_path / "state/locks"
    locks.chmod(0o777)  # anyone could delete the lock file and start a second run beside a running one
    proc = vigil("doctor", "--root", str(tmp_path / "empty-root"), config=job)
    assert proc.returncode == 1
    assert f"PROBLEM  state: {locks} is writable by group or others (mode 0777)" in proc.stdout
    assert f"chmod 700 {locks}" in proc.stdout
    locks.chmod(0o700)
    out = vigil("doctor", "--root", str(tmp_path / "empty-root"), config=job).stdout
    assert "writable by group or others" not in out
