"""`vigil fleet URL`: every job under a bucket prefix or a directory, from status objects and newest manifests."""

from __future__ import annotations

import json
import os
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

from gen_history import status_and_manifest
from helpers import VIGIL, files_job_body, vigil
from test_report import _check_page
from test_s3 import s3_dest


def _two_hosts(tmp_path, make_job, app_tree, s3_server, bucket):
    """Two hosts back up into one bucket prefix: web1's job succeeds, web2's fails."""
    good = make_job(files_job_body(app_tree, tmp_path / "b1") + s3_dest(s3_server, bucket)
                    + '[schedule]\ncron = "0 19 * * *"\n', name="shop", state_dir=tmp_path / "s1")
    vigil("run", config=good, check=0)
    bad = make_job(files_job_body(app_tree, tmp_path / "b2") + s3_dest(s3_server, bucket), name="blog",
                   state_dir=tmp_path / "s2")
    vigil("run", config=bad, check=0)
    app_tree.rename(tmp_path / "moved")
    vigil("run", config=bad, check=1)  # blog's last run failed
    app_tree.parent.joinpath("moved").rename(app_tree)


def test_fleet_over_s3_names_the_failed_job(tmp_path, make_job, app_tree, s3_server, s3_bucket, monkeypatch):
    _, bucket = s3_bucket
    _two_hosts(tmp_path, make_job, app_tree, s3_server, bucket)
    # Credentials from boto3's usual chain: the environment here.
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    url = f"s3://{bucket}/backups/"
    nagios = vigil("fleet", url, "--endpoint-url", s3_server, "--format", "nagios", check=2).stdout
    assert nagios.startswith("VIGIL CRITICAL - blog: last run ") and "failed at step source:app" in nagios
    assert "shop" not in nagios.split("|")[0] and "jobs=2;" in nagios and "critical=1;" in nagios
    report = json.loads(vigil("fleet", url, "--endpoint-url", s3_server, "--format", "json", check=2).stdout)
    assert {j["job"]: j["status"] for j in report["jobs"]} == {"blog": "CRITICAL", "shop": "OK"}
    text = vigil("fleet", url, "--endpoint-url", s3_server, check=2).stdout
    assert text.splitlines()[0].startswith("blog: CRITICAL")
    prom = vigil("fleet", url, "--endpoint-url", s3_server, "--format", "prometheus", check=2).stdout
    assert 'vigil_health_status{job="blog"} 2' in prom and 'vigil_health_status{job="shop"} 0' in prom
    # The page for the whole fleet, in a real browser.
    page = tmp_path / "fleet.html"
    vigil("fleet", url, "--endpoint-url", s3_server, "--format", "html", "--output", str(page), check=2)
    _check_page(page, tmp_path, 2, {"success", "failed"})


def test_fleet_of_a_local_directory(tmp_path, make_job, app_tree):
    _two_hosts_local = tmp_path / "shared"
    job = make_job(files_job_body(app_tree, _two_hosts_local), name="shop")
    vigil("run", config=job, check=0)
    out = vigil("fleet", str(_two_hosts_local), "--format", "json", check=0).stdout
    [entry] = json.loads(out)["jobs"]
    assert entry["job"] == "shop" and entry["status"] == "OK" and entry["host"]
    # The job folder itself is a fleet of one, named by its own name even as ".".
    vigil("fleet", str(_two_hosts_local / "shop"), check=0)
    proc = subprocess.run([VIGIL, "fleet", ".", "--format", "json"], cwd=_two_hosts_local / "shop",
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and [j["job"] for j in json.loads(proc.stdout)["jobs"]] == ["shop"]


def test_a_job_that_stopped_reporting_is_critical(tmp_path):
    """Hosts in folders one level down; one whose newest backup and report are older than its schedule allows."""
    root = tmp_path / "fleet"
    now = datetime.now(UTC)
    for host, age in (("web1", timedelta(hours=2)), ("web2", timedelta(days=3))):
        bid, status, manifest = status_and_manifest("api", host, now, age=age)
        (root / host / "api" / bid).mkdir(parents=True)
        (root / host / "api" / "status.json").write_bytes(status)
        (root / host / "api" / bid / "manifest.json").write_bytes(manifest)
    proc = vigil("fleet", str(root), "--format", "json", check=2)
    jobs = {j["job"]: j for j in json.loads(proc.stdout)["jobs"]}
    assert jobs["web1/api"]["status"] == "OK" and jobs["web2/api"]["status"] == "CRITICAL"
    reasons = " ".join(jobs["web2/api"]["reasons"])
    assert "is missing" in reasons and "no run has reported since" in reasons


def test_empty_mistyped_or_unlistable_prefix_is_unknown(tmp_path, s3_server, s3_bucket, monkeypatch):
    _, bucket = s3_bucket
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    empty = vigil("fleet", f"s3://{bucket}/nothing-here/", "--endpoint-url", s3_server, check=3)
    assert empty.stdout == "" and len(empty.stderr.strip().splitlines()) == 1 and "no job under" in empty.stderr
    nagios = vigil("fleet", f"s3://{bucket}/backup/", "--endpoint-url", s3_server, "--format", "nagios", check=3)
    assert nagios.stdout.startswith("VIGIL UNKNOWN - no job under s3://") and nagios.stdout.count("\n") == 1
    nobucket = vigil("fleet", "s3://no-such-bucket-here/p/", "--endpoint-url", s3_server, check=3)
    assert "NoSuchBucket" in nobucket.stderr and len(nobucket.stderr.strip().splitlines()) == 1
    assert "Traceback" not in nobucket.stderr
    unreachable = vigil("fleet", f"s3://{bucket}/", "--endpoint-url", "http://127.0.0.1:9", check=3)
    assert "cannot list" in unreachable.stderr and len(unreachable.stderr.strip().splitlines()) == 1
    missing = vigil("fleet", str(tmp_path / "nowhere"), check=3)
    assert "nowhere" in missing.stderr and len(missing.stderr.strip().splitlines()) == 1
    bad_format = vigil("fleet", str(tmp_path), "--format", "xml", check=3)
    assert "--format" in bad_format.stderr


def test_fleet_without_boto3_says_what_to_install(tmp_path):
    shadow = tmp_path / "shadow"
    shadow.mkdir()
    (shadow / "boto3.py").write_text("raise ImportError('boto3 is not installed here')\n")
    proc = vigil("fleet", "s3://bucket/prefix/", check=3, env={"PYTHONPATH": str(shadow)})
    assert "vigil-backup[s3]" in proc.stderr and len(proc.stderr.strip().splitlines()) == 1


def test_fleet_of_1000_jobs(s3_server, s3_bucket, monkeypatch, capsys):
    """1,000 jobs of 100 hosts written straight into the bucket; the time is logged, the bound is the benchmark's."""
    s3, bucket = s3_bucket
    now = datetime.now(UTC)

    def put(i: int) -> None:
        job, host = f"job{i:04d}", f"host{i % 100:02d}"
        failed = i % 250 == 7
        bid, status, manifest = status_and_manifest(job, host, now, outcome="failed" if failed else "success",
                                                    error="disk full" if failed else None)
        s3.put_object(Bucket=bucket, Key=f"fleet/{job}/status.json", Body=status)
        s3.put_object(Bucket=bucket, Key=f"fleet/{job}/{bid}/manifest.json", Body=manifest)

    with ThreadPoolExecutor(16) as pool:
        list(pool.map(put, range(1000)))
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    started = time.monotonic()
    proc = vigil("fleet", f"s3://{bucket}/fleet/", "--endpoint-url", s3_server, "--format", "json", check=2,
                 timeout=300)
    took = time.monotonic() - started
    with capsys.disabled():
        print(f"\nvigil fleet over 1000 jobs in moto: {took:.1f}s")
    jobs = json.loads(proc.stdout)["jobs"]
    assert len(jobs) == 1000
    assert sorted(j["job"] for j in jobs if j["status"] == "CRITICAL") == ["job0007", "job0257", "job0507",
                                                                           "job0757"]


def _local_job(root, rel, now=None, status_patch=None, age=timedelta(hours=2), **kw):
    """A job folder under `root` as a host leaves it: status.json and the newest backup's manifest."""
    name = rel.rsplit("/", 1)[-1]
    bid, status, manifest = status_and_manifest(name, "web1", now or datetime.now(UTC), age=age, **kw)
    folder = root / rel
    (folder / bid).mkdir(parents=True)
    patched = {**json.loads(status), **(status_patch or {})}
    (folder / "status.json").write_text(json.dumps(patched))
    (folder / bid / "manifest.json").write_bytes(manifest)
    return folder, bid


def test_output_never_writes_through_a_planted_link(tmp_path):
    root = tmp_path / "fleet"
    _local_job(root, "shop")
    out = tmp_path / "out"
    out.mkdir()
    victim = tmp_path / "victim.txt"
    victim.write_text("precious\n")
    (out / ".page.html.tmp").symlink_to(victim)
    vigil("fleet", str(root), "--format", "html", "--output", str(out / "page.html"), check=0)
    assert victim.read_text() == "precious\n"
    assert (out / "page.html").read_text().startswith("<!DOCTYPE html>")
    assert (out / "page.html").stat().st_mode & 0o777 == 0o644
    assert sorted(p.name for p in out.iterdir()) == [".page.html.tmp", "page.html"]


def test_output_that_cannot_be_written_is_unknown(tmp_path):
    root = tmp_path / "fleet"
    _local_job(root, "shop")
    proc = vigil("fleet", str(root), "--output", str(tmp_path / "nowhere" / "x.txt"), check=3)
    assert "cannot write" in proc.stderr and len(proc.stderr.strip().splitlines()) == 1
    nagios = vigil("fleet", str(root), "--format", "nagios", "--output", str(tmp_path / "nowhere" / "x"), check=3)
    assert nagios.stdout.startswith("VIGIL UNKNOWN - cannot write") and nagios.stdout.count("\n") == 1


def test_a_fifo_for_a_status_or_manifest_is_unreadable_not_a_hang(tmp_path):
    root = tmp_path / "fleet"
    _local_job(root, "shop")
    blog, _ = _local_job(root, "blog")
    (blog / "status.json").unlink()
    os.mkfifo(blog / "status.json")
    api, bid = _local_job(root, "api")
    (api / bid / "manifest.json").unlink()
    os.mkfifo(api / bid / "manifest.json")
    proc = vigil("fleet", str(root), "--format", "json", check=2, timeout=30)
    jobs = {j["job"]: j for j in json.loads(proc.stdout)["jobs"]}
    assert jobs["shop"]["status"] == "OK"
    for name in ("blog", "api"):
        assert jobs[name]["status"] == "CRITICAL" and "not a regular file" in " ".join(jobs[name]["reasons"])


def test_a_job_with_only_a_partial_backup_is_critical(tmp_path):
    """A first run killed mid-backup leaves only `.partial-<id>`: that job is there, with no backup."""
    root = tmp_path / "fleet"
    _local_job(root, "shop")
    bid, _, _ = status_and_manifest("blog", "web1", datetime.now(UTC))
    (root / "blog" / f".partial-{bid}").mkdir(parents=True)
    (root / "notes" / ".cache").mkdir(parents=True)  # not a job
    proc = vigil("fleet", str(root), "--format", "json", check=2)
    jobs = {j["job"]: j for j in json.loads(proc.stdout)["jobs"]}
    assert set(jobs) == {"shop", "blog"}
    assert jobs["blog"]["status"] == "CRITICAL" and "no complete backup" in jobs["blog"]["reasons"]


def test_jobs_deeper_than_the_search_are_unknown_not_dropped(tmp_path):
    root = tmp_path / "fleet"
    _local_job(root, "dc1/web1/shop")  # three levels: found
    _local_job(root, "dc1/rack2/web2/blog")  # four levels: beyond the search
    proc = vigil("fleet", str(root), "--format", "json", check=3)
    jobs = {j["job"]: j for j in json.loads(proc.stdout)["jobs"]}
    assert jobs["dc1/web1/shop"]["status"] == "OK"
    [line] = jobs["dc1/rack2/web2"]["reasons"]
    assert jobs["dc1/rack2/web2"]["status"] == "UNKNOWN" and "not searched" in line and "blog" in line
    nagios = vigil("fleet", str(root), "--format", "nagios", check=3).stdout
    assert nagios.startswith("VIGIL UNKNOWN - dc1/rack2/web2: not searched") and nagios.count("\n") == 1


def test_an_incremental_whose_chain_is_not_there_is_critical(tmp_path):
    root = tmp_path / "fleet"
    folder, bid = _local_job(root, "shop")
    old = datetime.now(UTC) - timedelta(days=1)
    base = f"{old:%Y%m%dT%H%M%SZ}-00abcd"
    m = json.loads((folder / bid / "manifest.json").read_text())
    m.update(kind="incremental", base=base, chain=[base])
    (folder / bid / "manifest.json").write_text(json.dumps(m))
    proc = vigil("fleet", str(root), "--format", "json", check=2)
    [job] = json.loads(proc.stdout)["jobs"]
    assert job["status"] == "CRITICAL" and f"chain broken: base {base} is missing" in " ".join(job["reasons"])


def test_html_page_survives_dates_at_the_ends_of_time(tmp_path):
    root = tmp_path / "fleet"
    _local_job(root, "shop")
    _local_job(root, "old", status_patch={"started_at": "0001-01-01T00:00:00Z"})
    _local_job(root, "far", status_patch={"started_at": "9999-12-31T23:00:00Z"})
    _local_job(root, "future", now=datetime(9998, 6, 1, tzinfo=UTC))
    page = tmp_path / "fleet.html"
    proc = vigil("fleet", str(root), "--format", "html", "--output", str(page))
    assert proc.returncode in (2, 3)
    assert "Traceback" not in proc.stderr and "cannot" not in proc.stderr
    text = page.read_text()
    assert text.count('<section class="job"') == 4
    assert all(f'data-job="{name}"' in text for name in ("shop", "old", "far", "future"))


def test_unknown_nagios_line_is_one_line_without_perfdata(tmp_path):
    odd = tmp_path / "a|b\nc"
    proc = vigil("fleet", str(odd), "--format", "nagios", check=3)
    assert proc.stdout.startswith("VIGIL UNKNOWN - ") and proc.stdout.count("\n") == 1 and "|" not in proc.stdout
