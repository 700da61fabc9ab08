"""JOB/status.json: what a fleet view reads from each destination after every run (SPEC §13)."""

from __future__ import annotations

import json

from helpers import committed, files_job_body, vigil, vigil_json
from test_s3 import s3_dest

SECRET = "smtp-Secret-7f3a"


def test_every_run_leaves_a_status_object_on_each_destination(tmp_path, make_job, app_tree, s3_server, s3_bucket,
                                                                 monkeypatch):
    s3, bucket = s3_bucket
    monkeypatch.setenv("VIGIL_TEST_STATUS_SMTP", SECRET)
    dest = tmp_path / "backups"
    job = make_job(files_job_body(app_tree, dest) + s3_dest(s3_server, bucket)
                   + '[schedule]\ncron = "0 19 * * *"\n[health]\ngrace = "2h"\n'
                   + '[[notify]]\ntype = "email"\nsmtp_host = "127.0.0.1"\nsmtp_port = 9\nfrom = "v@example.test"\n'
                   + 'to = ["ops@example.test"]\nusername = "u"\npassword_env = "VIGIL_TEST_STATUS_SMTP"\n'
                   + 'on = ["success"]\n')
    vigil("run", config=job, check=0, env={"TZ": "Europe/Paris"})
    [backup] = committed(dest)
    local = json.loads((dest / "app" / "status.json").read_text())
    remote = json.loads(s3.get_object(Bucket=bucket, Key="backups/app/status.json")["Body"].read())
    for status in (local, remote):
        assert status["job"] == "app" and status["outcome"] == "success" and status["step"] is None
        assert status["run_id"] == backup.name == status["newest_backup_id"]
        assert status["newest_backup_bytes"] > 0 and status["started_at"] and status["finished_at"]
        assert (status["schedule"], status["grace_seconds"], status["max_age_seconds"]) == ("0 19 * * *", 7200, None)
        # The host's zone, for a fleet view elsewhere to read the schedule as this host's cron does.
        assert status["timezone"] == "Europe/Paris" and status["utc_offset_seconds"] in (3600, 7200)
        assert status["max_runtime_seconds"] == 6 * 3600
        assert SECRET not in json.dumps(status) and "VIGIL_TEST_STATUS_SMTP" not in json.dumps(status)
    assert oct((dest / "app" / "status.json").stat().st_mode & 0o777) == "0o600"
    assert [b["id"] for b in vigil_json("list", config=job)] == [backup.name, backup.name]  # never a backup

    # A failed run replaces it, still naming the newest complete backup.
    app_tree.rename(tmp_path / "gone")
    vigil("run", config=job, check=1)
    failed = json.loads((dest / "app" / "status.json").read_text())
    assert (failed["outcome"], failed["step"]) == ("failed", "source:app")
    assert failed["run_id"] != backup.name and failed["newest_backup_id"] == backup.name
    assert not [p for p in (dest / "app").iterdir() if p.name.startswith(".status")]  # no temporary left
