"""The founding incident as a file tree: one job scheduled three times."""

from __future__ import annotations

import os
from pathlib import Path

from helpers import files_job_body, vigil

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
