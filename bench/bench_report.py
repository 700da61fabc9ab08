#!/usr/bin/env python3
"""Time `vigil report --html` over a long history and `vigil fleet` over a bucket of 1,000 jobs.

    python bench/bench_report.py [--runs 2000] [--jobs 1000] [--repeat 3]

Report: a job whose journal holds `--runs` attempts (one every 20 minutes,
one in nine of them failed, skipped, died or interrupted) and whose local
destination holds the manifests of its newest 30 backups; prints the median
time of `vigil report --html` and the page's size. Fleet: `--jobs` jobs of 100
hosts, each a status.json and one manifest written straight into a bucket of
an S3 server (moto in server mode on 127.0.0.1); prints the median time of
`vigil fleet --format json` and the requests it sent (counted by the client,
from `vigil -v`'s log line). Also the import time of the page writer and, for
comparison, of matplotlib when it is installed.
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from bench_backup import default_vigil, precompile  # noqa: E402
from gen_history import status_and_manifest, write_history  # noqa: E402


def run(cmd: list[str], ok: tuple[int, ...] = (0,)) -> tuple[float, subprocess.CompletedProcess[str]]:
    start = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    took = time.perf_counter() - start
    if proc.returncode not in ok:
        sys.exit(f"benchmark command failed ({proc.returncode}): {cmd}\n{proc.stderr}")
    return took, proc


def import_time(module: str) -> float | None:
    code = f"import time; t = time.perf_counter(); import {module}; print(time.perf_counter() - t)"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    return float(proc.stdout) if proc.returncode == 0 else None


def bench_report(vigil: str, work: Path, runs: int, repeat: int) -> None:
    (work / "www").mkdir()
    job = work / "app.toml"
    job.write_text(f'name = "app"\nstate_dir = "{work}/state"\n[[source]]\ntype = "files"\nname = "app"\n'
                   f'path = "{work}/www"\n[[destination]]\ntype = "local"\npath = "{work}/dest"\n'
                   '[schedule]\ncron = "*/20 * * * *"\n')
    write_history(work / "state", work / "dest", "app", runs, datetime.now(UTC), timedelta(minutes=20))
    days = runs * 20 // (24 * 60) + 2
    page = work / "report.html"
    times = [run([vigil, "--config", str(job), "report", "--days", str(days), "--html", str(page)])[0]
             for _ in range(repeat)]
    text = page.read_text()
    marks = len(re.findall(r'<use class="mark ', text))
    print(f"report --html, {runs} runs over {days} days: median {statistics.median(times):.2f}s "
          f"(rounds {', '.join(f'{t:.2f}' for t in times)}); page {page.stat().st_size / 1024:.0f} KiB, "
          f"{marks} outcome marks")


def bench_fleet(vigil: str, jobs: int, repeat: int) -> None:
    import logging

    import boto3
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # the server's line per request
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        endpoint = f"http://{host}:{port}"
        s3 = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id="bench",
                          aws_secret_access_key="bench")
        s3.create_bucket(Bucket="fleet")
        now = datetime.now(UTC)

        def put(i: int) -> None:
            bid, status, manifest = status_and_manifest(f"job{i:04d}", f"host{i % 100:02d}", now)
            s3.put_object(Bucket="fleet", Key=f"backups/job{i:04d}/status.json", Body=status)
            s3.put_object(Bucket="fleet", Key=f"backups/job{i:04d}/{bid}/manifest.json", Body=manifest)

        with ThreadPoolExecutor(16) as pool:
            list(pool.map(put, range(jobs)))
        env = {"AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench", "AWS_DEFAULT_REGION": "us-east-1"}
        times, requests = [], 0
        for _ in range(repeat):
            cmd = [vigil, "-v", "fleet", "s3://fleet/backups/", "--endpoint-url", endpoint, "--format", "json"]
            took, proc = run(cmd_env(cmd, env), ok=(0, 1, 2))
            times.append(took)
            assert len(json.loads(proc.stdout)["jobs"]) == jobs
            found = re.search(r"with (\d+) request", proc.stderr)
            requests = int(found.group(1)) if found else -1
        print(f"fleet over {jobs} jobs in moto: median {statistics.median(times):.2f}s "
              f"(rounds {', '.join(f'{t:.2f}' for t in times)}); {requests} requests")
    finally:
        server.stop()


def cmd_env(cmd: list[str], env: dict[str, str]) -> list[str]:
    return ["env", *(f"{k}={v}" for k, v in env.items()), *cmd]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=2000)
    ap.add_argument("--jobs", type=int, default=1000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--vigil", default=default_vigil())
    args = ap.parse_args()
    precompile()
    for module in ("vigil.cli.page", "matplotlib.pyplot"):
        t = import_time(module)
        print(f"import {module}: " + (f"{t * 1000:.0f} ms" if t is not None else "not installed"))
    with tempfile.TemporaryDirectory(prefix="vigil-bench-report-") as tmp:
        bench_report(args.vigil, Path(tmp), args.runs, args.repeat)
    bench_fleet(args.vigil, args.jobs, args.repeat)


if __name__ == "__main__":
    main()
