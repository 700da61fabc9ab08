"""The s3 destination against an S3 HTTP server (moto in server mode)."""

from __future__ import annotations

import json
import subprocess
import time

import pytest
import zstandard
from helpers import (
    VIGIL,
    age_keygen,
    committed,
    files_and_sqlite,
    tree_listing,
    tree_without_db,
    vigil,
    vigil_json,
    wait_for_step,
)
from jobfile import toml


def s3_dest(endpoint: str, bucket: str, name: str = "offsite") -> str:
    """An s3 destination on the test server, its keys in the fixture's variables; its table comes last."""
    return "\n" + toml({"destination": [{
        "type": "s3", "name": name, "bucket": bucket, "prefix": "backups/", "endpoint_url": endpoint,
        "region": "us-east-1", "access_key_id_env": "VIGIL_TEST_S3_KEY", "secret_access_key_env": "VIGIL_TEST_S3_SECRET",
    }]})


def test_round_trip_through_s3_and_local(tmp_path, make_job, app_tree, s3_server, s3_bucket):
    s3, bucket = s3_bucket
    db = app_tree / "database/database.sqlite"
    job = make_job(files_and_sqlite(app_tree, db) + s3_dest(s3_server, bucket)
                   + f'[[destination]]\ntype = "local"\npath = "{tmp_path / "local"}"\n')
    vigil("run", config=job, check=0)
    rows = vigil_json("list", config=job)
    assert sorted(r["destination"] for r in rows) == ["local", "offsite"] and rows[0]["id"] == rows[1]["id"]
    backup_id = rows[0]["id"]
    keys = {o["Key"] for o in s3.list_objects_v2(Bucket=bucket)["Contents"]}
    assert f"backups/app/{backup_id}/manifest.json" in keys
    assert f"backups/app/{backup_id}/files-app.tar.zst" in keys
    # By hand: download, zstd -d | tar -x, and the SHA-256 matches the manifest.
    manifest = json.loads(s3.get_object(Bucket=bucket, Key=f"backups/app/{backup_id}/manifest.json")["Body"].read())
    raw = s3.get_object(Bucket=bucket, Key=f"backups/app/{backup_id}/files-app.tar.zst")["Body"].read()
    import hashlib

    art = next(a for a in manifest["artifacts"] if a["name"] == "files-app.tar.zst")
    assert hashlib.sha256(raw).hexdigest() == art["sha256"]
    out = tmp_path / "by-hand"
    out.mkdir()
    subprocess.run(["tar", "-x", "-C", str(out)], input=zstandard.decompress(raw, max_output_size=1 << 30),
                   check=True)
    assert tree_listing(out) == tree_without_db(app_tree)

    vigil("verify", "app", "latest", "--deep", "--restore-test", config=job, check=0)
    target = tmp_path / "restored"
    done = vigil("restore", "app", "latest", "--source", "app", "--to", str(target), config=job, check=0)
    assert "from offsite" in done.stdout  # the first destination listed in the job
    assert tree_listing(target) == tree_without_db(app_tree)


def test_large_artifact_uses_multipart_and_prune_deletes_objects(tmp_path, make_job, big_tree, s3_server, s3_bucket):
    s3, bucket = s3_bucket
    job = make_job(f'[[source]]\ntype = "files"\nname = "app"\npath = "{big_tree}"\n'
                   + s3_dest(s3_server, bucket) + "[retention]\nkeep_last = 1\n")
    vigil("run", config=job, check=0, timeout=300)
    vigil("run", "--full", config=job, check=0, timeout=300)  # the first is needed by nothing now
    [row] = vigil_json("list", config=job)
    prefixes = {o["Key"].split("/")[2] for o in s3.list_objects_v2(Bucket=bucket)["Contents"]} - {"status.json"}
    assert prefixes == {row["id"]}  # the older backup was pruned, objects and all
    vigil("verify", config=job, check=0)


def test_killed_upload_is_not_listed_and_cleaned_by_next_prune(tmp_path, make_job, big_tree, s3_server, s3_bucket):
    s3, bucket = s3_bucket
    job = make_job(f'[[source]]\ntype = "files"\nname = "app"\npath = "{big_tree}"\n' + s3_dest(s3_server, bucket))
    proc = subprocess.Popen([VIGIL, "--config", str(job), "run"], stderr=subprocess.DEVNULL)
    wait_for_step(job, "source:")
    deadline = time.time() + 30
    while not s3.list_multipart_uploads(Bucket=bucket).get("Uploads") and time.time() < deadline:
        time.sleep(0.05)
    proc.kill()
    proc.wait()
    assert s3.list_multipart_uploads(Bucket=bucket).get("Uploads")
    assert vigil_json("list", config=job) == []
    vigil("run", "app", config=job, check=0, timeout=300)  # marks the killed run died
    vigil("prune", config=job, check=0)
    assert not s3.list_multipart_uploads(Bucket=bucket).get("Uploads")
    [row] = vigil_json("list", config=job)
    prefixes = {o["Key"].split("/")[2] for o in s3.list_objects_v2(Bucket=bucket)["Contents"]} - {"status.json"}
    assert prefixes == {row["id"]}


def test_missing_bucket_fails_naming_the_destination_and_spares_the_others(tmp_path, make_job, app_tree,
                                                                          s3_server, s3_bucket, http_recorder):
    job = make_job(f'[[source]]\ntype = "files"\nname = "app"\npath = "{app_tree}"\n'
                   + s3_dest(s3_server, "no-such-bucket")
                   + f'[[destination]]\ntype = "local"\npath = "{tmp_path / "local"}"\n'
                   + f'[[notify]]\ntype = "webhook"\nurl = "{http_recorder.url}/n"\n')
    proc = vigil("run", config=job, check=1)
    assert "offsite" in proc.stderr and "no-such-bucket" in proc.stderr
    [run] = vigil_json("runs", config=job)
    assert run["step"] == "destination:offsite"
    payload = json.loads(http_recorder.requests[0]["body"])
    assert "destination offsite" in payload["error"] and payload["committed_on"] == ["local"]
    assert len(committed(tmp_path / "local")) == 1  # the local copy is complete and listed
    listed = vigil("list", "--json", config=job)
    assert listed.returncode == 0 and "offsite" in listed.stderr  # the list is not whole, and says so
    assert [r["destination"] for r in json.loads(listed.stdout)] == ["local"]


def test_missing_credentials_variable_is_named(tmp_path, make_job, app_tree, s3_server, s3_bucket, monkeypatch):
    monkeypatch.delenv("VIGIL_TEST_S3_SECRET")
    job = make_job(f'[[source]]\ntype = "files"\nname = "app"\npath = "{app_tree}"\n' + s3_dest(s3_server, s3_bucket[1]))
    proc = vigil("run", config=job, check=1)
    assert "destination offsite: environment variable VIGIL_TEST_S3_SECRET is not set" in proc.stderr
    assert "Traceback" not in proc.stderr


@pytest.mark.parametrize("keys", ["recipients", "passphrase"])
def test_encrypted_round_trip_through_s3(tmp_path, make_job, app_tree, s3_server, s3_bucket, keys):
    s3, bucket = s3_bucket
    if keys == "recipients":
        key = tmp_path / "key.txt"
        encryption = f'recipients = ["{age_keygen(key)}"]\nidentity_file = "{key}"\n'
    else:
        (tmp_path / "passphrase").write_text("a long random passphrase for the test\n")
        (tmp_path / "passphrase").chmod(0o600)
        encryption = f'passphrase_file = "{tmp_path / "passphrase"}"\n'
    db = app_tree / "database/database.sqlite"
    job = make_job(files_and_sqlite(app_tree, db) + s3_dest(s3_server, bucket) + "[encryption]\n" + encryption)
    vigil("run", config=job, check=0)
    [row] = vigil_json("list", config=job)
    assert sorted(row["artifacts"]) == ["db-db.sqlite.zst.age", "files-app.tar.zst.age", "index-app.jsonl.zst.age"]
    raw = s3.get_object(Bucket=bucket, Key=f"backups/app/{row['id']}/files-app.tar.zst.age")["Body"].read()
    assert raw.startswith(b"age-encryption.org/v1") and b"config/" not in raw
    vigil("verify", "app", "latest", "--deep", "--restore-test", config=job, check=0)
    target = tmp_path / "restored"
    vigil("restore", "app", "latest", "--source", "app", "--to", str(target), config=job, check=0)
    assert tree_listing(target) == tree_without_db(app_tree)


def test_s3_lock_holds_across_hosts(tmp_path, make_job, app_tree, s3_server, s3_bucket):
    s3, bucket = s3_bucket
    body = (f'[[source]]\ntype = "files"\nname = "app"\npath = "{app_tree}"\n' + s3_dest(s3_server, bucket)
            + '[lock]\nbackend = "s3"\ndestination = "offsite"\n[hooks]\nbefore = [["sleep", "4"]]\n')
    # Two "hosts": each has its own state dir (its own flock and journal); only the lease is shared.
    (tmp_path / "h1").mkdir()
    (tmp_path / "h2").mkdir()
    jobs = []
    for host in ("h1", "h2"):
        path = tmp_path / host / "app.toml"
        path.write_text(f'name = "app"\nstate_dir = "{tmp_path / host / "state"}"\n' + body)
        jobs.append(path)
    procs = [subprocess.Popen([VIGIL, "--config", str(j), "run"], stderr=subprocess.PIPE, text=True) for j in jobs]
    results = sorted((p.wait(timeout=120), p.stderr.read()) for p in procs)
    assert [code for code, _ in results] == [0, 75], results
    assert "already running" in results[1][1]
    assert len(vigil_json("list", config=jobs[0])) == 1
    assert "Contents" not in s3.list_objects_v2(Bucket=bucket, Prefix="backups/app/locks/")  # released


def test_s3_lock_takes_over_an_expired_lease(tmp_path, make_job, app_tree, s3_server, s3_bucket):
    s3, bucket = s3_bucket
    s3.put_object(Bucket=bucket, Key="backups/app/locks/lease",
                  Body=json.dumps({"host": "dead-host", "pid": 1, "run_id": "x", "expires_at": time.time() - 5}))
    job = make_job(f'[[source]]\ntype = "files"\nname = "app"\npath = "{app_tree}"\n' + s3_dest(s3_server, bucket)
                   + '[lock]\nbackend = "s3"\ndestination = "offsite"\n')
    vigil("run", config=job, check=0)
    s3.put_object(Bucket=bucket, Key="backups/app/locks/lease",
                  Body=json.dumps({"host": "live-host", "pid": 2, "run_id": "y", "expires_at": time.time() + 600}))
    proc = vigil("run", config=job, check=75)
    assert "live-host" in proc.stderr


def test_doctor_probes_conditional_writes(tmp_path, make_job, app_tree, s3_server, s3_bucket):
    job = make_job(f'[[source]]\ntype = "files"\nname = "app"\npath = "{app_tree}"\n' + s3_dest(s3_server, s3_bucket[1])
                   + '[lock]\nbackend = "s3"\ndestination = "offsite"\n')
    out = vigil("doctor", "--root", str(tmp_path / "root"), config=job).stdout
    assert "OK       lock: s3 lock on offsite: the store honours conditional writes" in out


def test_listing_pages_through_thousands_of_backups(tmp_path, make_job, app_tree, s3_server, s3_bucket):
    s3, bucket = s3_bucket
    job = make_job(f'[[source]]\ntype = "files"\nname = "app"\npath = "{app_tree}"\n' + s3_dest(s3_server, bucket))
    vigil("run", config=job, check=0)
    [real] = vigil_json("list", config=job)
    manifest = json.loads(s3.get_object(Bucket=bucket, Key=f"backups/app/{real['id']}/manifest.json")["Body"].read())
    # 1,200 more committed backups: more than one page (1,000 prefixes) of ListObjectsV2.
    for i in range(1200):
        backup_id = f"2025{1 + i // 100:02d}{1 + i % 28:02d}T{i % 24:02d}0000Z-{i:06x}"
        manifest.update(id=backup_id, started_at=f"2025-01-01T00:00:{i % 60:02d}.000Z")
        s3.put_object(Bucket=bucket, Key=f"backups/app/{backup_id}/manifest.json", Body=json.dumps(manifest))
    rows = vigil_json("list", config=job)
    assert len(rows) == 1201 and rows[0]["id"] == real["id"]
    assert len({r["id"] for r in rows}) == 1201


AUTH_SERVER = """
import json, os, sys, time
os.environ["INITIAL_NO_AUTH_ACTION_COUNT"] = "4"
from moto.server import ThreadedMotoServer
server = ThreadedMotoServer(ip_address="127.0.0.1", port=int(sys.argv[1]), verbose=False)
server.start()
import boto3
kw = dict(endpoint_url=f"http://127.0.0.1:{sys.argv[1]}", region_name="us-east-1")
iam = boto3.client("iam", aws_access_key_id="x", aws_secret_access_key="y", **kw)
iam.create_user(UserName="backup")
iam.put_user_policy(UserName="backup", PolicyName="s3", PolicyDocument=json.dumps(
    {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}]}))
key = iam.create_access_key(UserName="backup")["AccessKey"]
boto3.client("s3", aws_access_key_id=key["AccessKeyId"], aws_secret_access_key=key["SecretAccessKey"],
             **kw).create_bucket(Bucket="authed")
print(key["AccessKeyId"], flush=True)
time.sleep(600)
"""


def test_wrong_credentials_fail_naming_the_destination(tmp_path, make_job, app_tree, http_recorder, monkeypatch):
    import sys

    from servers import free_port

    port = free_port()
    server = subprocess.Popen([sys.executable, "-c", AUTH_SERVER, str(port)], stdout=subprocess.PIPE,
                              stderr=subprocess.DEVNULL, text=True)
    try:
        key_id = server.stdout.readline().strip()
        monkeypatch.setenv("VIGIL_TEST_S3_KEY", key_id)
        monkeypatch.setenv("VIGIL_TEST_S3_SECRET", "not-the-secret")
        job = make_job(f'[[source]]\ntype = "files"\nname = "app"\npath = "{app_tree}"\n'
                       + s3_dest(f"http://127.0.0.1:{port}", "authed")
                       + f'[[notify]]\ntype = "webhook"\nurl = "{http_recorder.url}/n"\n')
        proc = vigil("run", config=job, check=1)
        assert "destination offsite: bucket authed not usable: 403" in proc.stderr
        assert "not-the-secret" not in proc.stderr and "Traceback" not in proc.stderr
        payload = json.loads(http_recorder.requests[0]["body"])
        assert payload["step"] == "destination:offsite" and "destination offsite" in payload["error"]
    finally:
        server.kill()
        server.wait()


@pytest.fixture
def flaky_s3(s3_server):
    from servers import FlakyFront

    front = FlakyFront(s3_server)
    front.start()
    yield front
    front.stop()


def test_503_from_the_store_is_retried_then_fails_at_the_destination(tmp_path, make_job, app_tree, s3_bucket,
                                                                     flaky_s3):
    s3, bucket = s3_bucket
    retry = '[retry]\nattempts = 3\ndelay = "1s"\n'
    job = make_job(f'[[source]]\ntype = "files"\nname = "app"\npath = "{app_tree}"\n'
                   + s3_dest(flaky_s3.url, bucket) + retry)
    flaky_s3.failures = 2  # two refusals, then the store answers: within 3 attempts
    started = time.monotonic()
    proc = vigil("run", config=job, check=0)
    assert len(flaky_s3.refused) == 2 and time.monotonic() - started >= 3  # waited 1 s, then 2 s
    assert proc.stderr.count("SlowDown") >= 2  # each retry is logged
    [row] = vigil_json("list", config=job)
    vigil("verify", "app", row["id"], config=job, check=0)

    flaky_s3.failures = 10**6  # the store stays busy: the run gives up after 3 attempts
    flaky_s3.refused.clear()
    proc = vigil("run", config=job, check=1)
    assert len(flaky_s3.refused) == 3 and "Traceback" not in proc.stderr
    runs = vigil_json("runs", config=job)
    assert (runs[0]["outcome"], runs[0]["step"]) == ("failed", "destination:offsite")
    assert "503" in runs[0]["error"] or "SlowDown" in runs[0]["error"]
    assert [r["id"] for r in vigil_json("list", config=job)] == [row["id"]]  # nothing half-uploaded is listed


@pytest.mark.parametrize("prefix,folder", [("vigil", "vigil/"), ("/vigil/", "vigil/"), ("a//b", "a/b/"), ("", "")])
def test_prefix_is_a_folder(tmp_path, make_job, s3_server, s3_bucket, prefix, folder):
    s3, bucket = s3_bucket
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "f.txt").write_text("x")
    dest = s3_dest(s3_server, bucket).replace('prefix = "backups/"', f'prefix = "{prefix}"')
    job = make_job(f'[[source]]\ntype = "files"\nname = "app"\npath = "{tmp_path / "src"}"\n' + dest)
    vigil("run", config=job, check=0)
    [row] = vigil_json("list", config=job)
    keys = {o["Key"] for o in s3.list_objects_v2(Bucket=bucket)["Contents"]}
    assert f"{folder}app/{row['id']}/manifest.json" in keys, keys
    assert all(k.startswith(f"{folder}app/") for k in keys), keys


def test_read_back_refused_by_the_store_drops_only_that_destination(tmp_path, make_job, app_tree, s3_bucket,
                                                                    flaky_s3):
    s3, bucket = s3_bucket
    local = tmp_path / "local"
    job = make_job(f'[[source]]\ntype = "files"\nname = "app"\npath = "{app_tree}"\n'
                   f'[[destination]]\ntype = "local"\nname = "disk"\npath = "{local}"\n'
                   + s3_dest(flaky_s3.url, bucket))
    flaky_s3.deny_get = "files-app.tar.zst"  # uploads pass, the read-back is refused
    proc = vigil("run", config=job, check=1)
    assert "Traceback" not in proc.stderr
    assert any("files-app.tar.zst" in p for p in flaky_s3.refused)
    [run] = vigil_json("runs", config=job)
    assert (run["outcome"], run["step"]) == ("failed", "destination:offsite")
    assert "destination offsite" in run["error"] and ("403" in run["error"] or "AccessDenied" in run["error"])
    assert len(committed(local)) == 1  # the local copy still committed
    listed = s3.list_objects_v2(Bucket=bucket, Prefix="backups/app/").get("Contents", [])
    assert not [o for o in listed if o["Key"].endswith("manifest.json")]


def test_damaged_manifests_in_s3_are_listed_and_never_followed(tmp_path, make_job, app_tree, s3_server, s3_bucket):
    s3, bucket = s3_bucket
    job = make_job(f'[[source]]\ntype = "files"\nname = "app"\npath = "{app_tree}"\n' + s3_dest(s3_server, bucket)
                   + "[retention]\nkeep_last = 1\n")
    vigil("run", config=job, check=0)
    [real] = vigil_json("list", config=job)
    manifest = json.loads(s3.get_object(Bucket=bucket, Key=f"backups/app/{real['id']}/manifest.json")["Body"].read())
    s3.put_object(Bucket=bucket, Key="backups/elsewhere/keep", Body=b"precious")
    hostile = {
        "20250101T000000Z-000001": {"id": "../elsewhere"},
        "20250101T000000Z-000002": {"started_at": "garbage"},
        "20250101T000000Z-000003": {"artifacts": [{**manifest["artifacts"][0], "name": "../../elsewhere/keep"}]},
    }
    for backup_id, change in hostile.items():
        doc = {**manifest, "id": backup_id, "started_at": "2025-01-01T00:00:00.000Z", **change}
        s3.put_object(Bucket=bucket, Key=f"backups/app/{backup_id}/manifest.json", Body=json.dumps(doc))

    rows = vigil_json("list", config=job)
    assert [(r["id"], r["status"]) for r in rows] == [(real["id"], "complete")] + [
        (i, "damaged") for i in sorted(hostile, reverse=True)]
    assert "is not a plain file name" in rows[1]["reason"] and "'garbage'" in rows[2]["reason"]
    proc = vigil("verify", "app", "20250101T000000Z-000003", config=job, check=1)
    assert "DAMAGED  offsite:app/20250101T000000Z-000003: damaged backup: manifest.json: artifact name" in proc.stdout
    vigil("run", "--full", config=job, check=0)  # and its retention: one complete backup kept, the damaged left alone
    keys = {o["Key"] for o in s3.list_objects_v2(Bucket=bucket)["Contents"]}
    assert "backups/elsewhere/keep" in keys
    assert {k.split("/")[2] for k in keys if k.startswith("backups/app/")} - {real["id"]} >= set(hostile)
    assert real["id"] not in {k.split("/")[2] for k in keys if k.startswith("backups/app/")}
