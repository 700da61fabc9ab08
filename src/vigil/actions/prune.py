"""Applying retention to destinations (the I/O around retention.decide)."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from vigil.config.schema import Job
from vigil.destinations.base import Destination, make_destination
from vigil.errors import BackupError
from vigil.state.journal import RunRow
from vigil.actions.retention import Backup, Decision, decide

PARTIAL_MAX_AGE = 24 * 3600  # an unfinished backup older than this belongs to no live run


@dataclass
class Outcome:
    destination: str
    decisions: list[Decision]
    deleted: list[str]
    partials_removed: list[str]


def dead_runs(runs: list[RunRow]) -> set[str]:
    """Runs known to be over without a commit: their unfinished backups can go at once."""
    return {r.run_id for r in runs if r.outcome in ("failed", "interrupted", "died")}


def prune_destination(job: Job, dest: Destination, dry_run: bool, log: logging.Logger,
                      dead: set[str] | None = None) -> Outcome:
    manifests = dest.list(job.name)
    decisions = decide([Backup(m.id, m.started) for m in manifests], job.retention)
    deleted, partials = [], []
    for d in decisions:
        if d.keep or dry_run:
            continue
        log.info("prune %s: deleting backup %s", dest.name, d.backup.id)
        dest.delete(job.name, d.backup.id)
        deleted.append(d.backup.id)
    for p in dest.partials(job.name):
        if p.age > PARTIAL_MAX_AGE or p.backup_id in (dead or set()):
            if not dry_run:
                log.info("prune %s: removing unfinished backup %s (%.1fh old)", dest.name, p.backup_id, p.age / 3600)
                dest.delete_partial(job.name, p.backup_id)
            partials.append(p.backup_id)
    return Outcome(dest.name, decisions, deleted, partials)


def prune_job(job: Job, dry_run: bool, log: logging.Logger, only: list[str] | None = None,
              dead: set[str] | None = None) -> list[Outcome]:
    """Prune every destination (or those named in `only`); raise BackupError naming a failed one."""
    outcomes, errors = [], []
    for cfg in job.destination:
        if only is not None and cfg.name not in only:
            continue
        try:
            outcomes.append(prune_destination(job, make_destination(cfg, job.retry), dry_run, log, dead))
        except BackupError as exc:
            errors.append(str(exc))
    if errors:
        raise BackupError("; ".join(errors), "retention")
    return outcomes
