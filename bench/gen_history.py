"""Synthetic history for the report and fleet: journal rows, manifests and status objects.

    from gen_history import write_history, status_and_manifest

`write_history` fills a job's journal with N runs (mostly successes, one in nine
of another outcome in turn) and writes the manifests of the newest successful ones on
a local destination, as the runs would have. `status_and_manifest` builds the
two objects a fleet view reads for one job.
"""

from __future__ import annotations

import hashlib
import json
import random
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from vigil.state.journal import Journal, Outcome, RunRow
from vigil.timeutil import iso

RARE = [Outcome.FAILED, Outcome.SKIPPED, Outcome.DIED, Outcome.INTERRUPTED]


def backup_id(t: datetime, n: int) -> str:
    return f"{t:%Y%m%dT%H%M%SZ}-{n % 0xFFFFFF:06x}"


def manifest(job: str, bid: str, started: datetime, took: float, size: int, host: str = "web1",
             warnings: list[str] | None = None, kind: str | None = None) -> dict[str, Any]:
    m: dict[str, Any] = {
        "format": 1, "id": bid, "job": job, "host": host, "vigil_version": "0.0.0",
        "started_at": iso(started), "finished_at": iso(started + timedelta(seconds=took)),
        "artifacts": [{"name": "files-app.tar.zst", "source": "app", "type": "files", "size": size,
                       "sha256": hashlib.sha256(bid.encode()).hexdigest()}],
        "warnings": warnings or [],
    }
    if kind:
        m["kind"] = kind
    return m


def write_history(state_dir: Path, dest: Path, job: str, runs: int, now: datetime, every: timedelta,
                  keep: int = 30, seed: int = 1, error: str = "tar: app/storage: Cannot open") -> list[RunRow]:
    """`runs` attempts, one per `every` up to `now`; manifests of the newest `keep` successes in dest/JOB/."""
    rnd = random.Random(seed)
    rows = []
    size = 400 << 20
    with Journal(state_dir) as journal:
        for i in range(runs):
            started = now - every * (runs - i) + timedelta(seconds=rnd.randint(0, 30))
            outcome = RARE[(i // 9) % len(RARE)] if i % 9 == 4 else Outcome.SUCCESS  # each kind, from 40 runs on
            took = 0.05 if outcome == Outcome.SKIPPED else rnd.uniform(120, 400) + i * 0.05
            bid = backup_id(started, i)
            size = int(size * rnd.uniform(0.99, 1.0105)) if i % 500 else 400 << 20  # grows, then pruned
            row = RunRow(bid, job, 1000 + i, "web1", started.timestamp(), started_by="/usr/sbin/CRON -f")
            journal.insert_run(row)
            step = {Outcome.SUCCESS: None, Outcome.SKIPPED: "lock"}.get(outcome) or rnd.choice(
                ["source:app", "destination:offsite", "verify"])
            journal.finish_run(bid, outcome, step=step, error=None if outcome == Outcome.SUCCESS else error,
                               warnings=[], nbytes=size if outcome == Outcome.SUCCESS else None,
                               backup_id=bid if outcome == Outcome.SUCCESS else None,
                               finished_at=started.timestamp() + took)
            row.outcome, row.finished_at = outcome, started.timestamp() + took
            row.bytes = size if outcome == Outcome.SUCCESS else None
            rows.append(row)
    successes = [r for r in rows if r.outcome == Outcome.SUCCESS][-keep:]
    for r in successes:
        d = dest / job / r.run_id
        d.mkdir(parents=True, exist_ok=True)
        started = datetime.fromtimestamp(r.started_at, UTC)
        (d / "manifest.json").write_text(json.dumps(manifest(job, r.run_id, started, (r.finished_at or 0)
                                                             - r.started_at, r.bytes or 0)))
    return rows


def status_and_manifest(job: str, host: str, now: datetime, outcome: str = "success", age: timedelta = timedelta(
        hours=2), schedule: str | None = "0 */6 * * *", error: str | None = None) -> tuple[str, bytes, bytes]:
    """(backup id, status.json, manifest.json) of a job whose newest backup started `age` ago."""
    started = now - age
    bid = backup_id(started, hash((job, host)) & 0xFFFFFF)
    status = {"host": host, "job": job, "run_id": bid, "outcome": outcome,
              "step": None if outcome == "success" else "source:app", "error": error,
              "started_at": iso(started), "finished_at": iso(started + timedelta(minutes=3)),
              "schedule": schedule, "grace_seconds": 10800.0, "max_age_seconds": None if schedule else 90000.0,
              "max_runtime_seconds": 21600.0, "timezone": "UTC", "utc_offset_seconds": 0,
              "newest_backup_id": bid, "newest_backup_bytes": 1234}
    return bid, json.dumps(status).encode(), json.dumps(manifest(job, bid, started, 180, 1234, host)).encode()
