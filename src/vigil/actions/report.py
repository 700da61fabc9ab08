"""`vigil report`: a job's history over a period (SPEC §13): its runs from the journal, the backups
each destination holds, and its current health."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from vigil.actions.health import JobHealth
from vigil.actions.monitor import check
from vigil.config.schema import Job
from vigil.destinations.base import make_destination
from vigil.errors import VigilError
from vigil.formats.manifest import Manifest
from vigil.state.journal import Journal, Outcome, RunRow


@dataclass
class Held:
    """What one destination holds of a job."""

    destination: str
    backups: list[Manifest] = field(default_factory=list)  # newest first
    damaged: int = 0
    error: str | None = None

    @property
    def total(self) -> int:
        return sum(m.size for m in self.backups)


@dataclass
class JobReport:
    job: str
    since: datetime
    until: datetime
    runs: list[RunRow]  # newest first
    held: list[Held]
    health: JobHealth
    journal_missing: bool = False


def kind(m: Manifest) -> str:
    """`full`, or `incremental on BASE` (SPEC §11)."""
    return f"incremental on {m.base}" if m.kind == "incremental" else "full"


def run_took(r: RunRow) -> float | None:
    """How long a run ran; None while it runs, and for one that died (its finished_at is when a
    later run found it dead)."""
    if r.finished_at is None or r.outcome == Outcome.DIED:
        return None
    return r.finished_at - r.started_at


def held(job: Job) -> list[Held]:
    out = []
    for cfg in job.destination:
        h = Held(cfg.name)
        try:
            scan = make_destination(cfg).scan(job.name)
            h.backups, h.damaged = scan.complete, len(scan.damaged)
        except VigilError as exc:
            h.error = str(exc)
        out.append(h)
    return out


def report(job: Job, days: int, now: datetime) -> JobReport:
    since = now - timedelta(days=days)
    runs: list[RunRow] = []
    journal = Journal.open_existing(job.state_dir)
    if journal is not None:
        with journal:
            runs = journal.runs(job.name, since=since.timestamp())
    # The journal keeps every unfinished row whatever its age; the period holds those started in it.
    runs = [r for r in runs if r.finished_at is not None or r.started_at >= since.timestamp()]
    runs.sort(key=lambda r: r.started_at, reverse=True)
    return JobReport(job.name, since, now, runs, held(job), check(job, now), journal_missing=journal is None)
