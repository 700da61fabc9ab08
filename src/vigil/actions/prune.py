"""Applying retention to destinations (the I/O around retention.decide)."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from vigil.actions.retention import Backup, Decision, decide
from vigil.config.schema import Job
from vigil.destinations.base import DamagedBackup, Destination, make_destination
from vigil.errors import BackupError
from vigil.state.journal import Journal, Outcome, RunRow

PARTIAL_MAX_AGE = 24 * 3600  # an unfinished backup older than this belongs to no live run


@dataclass
class Pruned:
    """What prune decided and did on one destination."""

    destination: str
    decisions: list[Decision]
    deleted: list[str]
    partials_removed: list[str]
    damaged: list[DamagedBackup] = field(default_factory=list)  # left in place, counted as nothing


def dead_runs(runs: list[RunRow]) -> set[str]:
    """Runs known to be over without a commit: their unfinished backups can go at once."""
    return {r.run_id for r in runs if r.outcome.failed}


def prune_destination(job: Job, dest: Destination, dry_run: bool, log: logging.Logger,
                      dead: set[str] | None = None) -> Pruned:
    scan = dest.scan(job.name)
    # A damaged backup is no backup to retention: it keeps nothing else alive, and is
    # never deleted by a rule (what it holds is for the operator to look at).
    for bad in scan.damaged:
        log.warning("prune %s: backup %s is damaged, left in place: %s", dest.name, bad.backup_id, bad.reason)
    decisions = decide([Backup(m.id, m.started, tuple(m.chain)) for m in scan.complete], job.retention)
    for d in decisions:  # what a backup with a broken chain still holds of its chain stays, as it does
        needed_by = next((bad.backup_id for bad in scan.damaged if d.backup.id in bad.chain), None)
        if needed_by is not None and not d.keep:
            d.keep = True
            d.reasons.append(f"base of {needed_by} (damaged)")
    deleted, partials = [], []
    # Newest first: an incremental goes before its base, so a prune cut short never
    # leaves a backup without its chain.
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
    return Pruned(dest.name, decisions, deleted, partials, scan.damaged)


def prune_job(job: Job, dry_run: bool, log: logging.Logger, only: list[str] | None = None,
              dead: set[str] | None = None) -> list[Pruned]:
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


def job_runs(job: Job) -> list[RunRow]:
    """The job's journal rows, newest first; none when it has no journal yet."""
    journal = Journal.open_existing(job.state_dir)
    if journal is None:
        return []
    with journal:
        return journal.runs(job.name)


def prune_requested(job: Job, dry_run: bool, log: logging.Logger) -> list[Pruned]:
    """`vigil prune` of one job. Refused (BackupError) while the job's last run did not
    succeed: the backups retention would delete may be the only good ones left."""
    history = job_runs(job)
    last = next((r for r in history if r.outcome.finished), None)
    if last is not None and last.outcome != Outcome.SUCCESS and not dry_run:
        raise BackupError(f"not pruning: the last run ({last.run_id}) {last.outcome}; "
                          "prune after a successful run", "retention")
    return prune_job(job, dry_run, log, dead=dead_runs(history))
