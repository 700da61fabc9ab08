"""Notifications: every message goes through the outbox in the journal.

Write first, deliver second, mark delivered third: a message that cannot be
delivered now stays queued and is retried by later vigil commands and by
`vigil notify flush`, and a message is never delivered twice (a delivery is
claimed in the journal before it is attempted). Channels are delivered in
parallel, so a slow or dead one never holds up the others, and a failing
channel never changes a run's outcome.
"""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from vigil.children import protect_secrets
from vigil.config.schema import Job
from vigil.errors import BackupError
from vigil.notify.message import run_message
from vigil.retry import with_retry
from vigil.state.journal import Journal, Outbox, RunRow

ATTEMPTS = 3  # per channel and dispatch, for transient errors
DELAY = 1.0  # seconds before the first retry, doubling
START_TIMEOUT = 10.0


def channels_for(job: Job, event: str) -> list[Any]:
    return [c for c in job.notify if event == "test" or event in c.on]


def _channels() -> Any:
    # Imported only when something is sent: smtplib, ssl and urllib are a
    # noticeable part of the start-up of a run that has nothing to deliver.
    from vigil.notify import channels

    return channels


def _send(cfg: Any, msg: dict[str, Any], log: logging.Logger, attempts: int) -> None:
    channels = _channels()
    with_retry(lambda: channels.send(cfg, msg), attempts=attempts, delay=DELAY,
               what=f"notification via {channels.describe(cfg)}", log=log)


def deliver(items: list[tuple[Any, dict[str, Any]]], log: logging.Logger,
            attempts: int = ATTEMPTS) -> list[BaseException | None]:
    """Send each (channel, message) in parallel; the error of each, or None."""
    if not items:
        return []
    with ThreadPoolExecutor(max_workers=len(items), thread_name_prefix="vigil-notify") as pool:
        futures = [pool.submit(_send, cfg, msg, log, attempts) for cfg, msg in items]
        return [f.exception() for f in futures]


def _warn(log: logging.Logger, cfg: Any, event: str, exc: BaseException, queued: bool) -> None:
    where = "kept in the outbox; `vigil notify flush` retries it" if queued else "not queued: no journal"
    log.warning("notification %s via %s failed: %s (%s)", event, _channels().describe(cfg), exc, where)


def dispatch(job: Job, event: str, msg: dict[str, Any], log: logging.Logger, *, run_id: str | None = None,
             journal: Journal | None = None) -> bool:
    """Queue `msg` for every channel that wants `event`, then deliver. True when all arrived."""
    chans = channels_for(job, event)
    if not chans:
        return True
    protect_secrets(job)  # a command channel must not see them
    own = journal is None
    try:
        journal = journal or Journal(job.state_dir)
    except BackupError as exc:
        log.error("%s: delivering without the outbox", exc)
        errors = deliver([(c, msg) for c in chans], log)
        for cfg, err in zip(chans, errors, strict=False):
            if err:
                _warn(log, cfg, event, err, queued=False)
        return not any(errors)
    try:
        outbox = Outbox(journal)
        queued = [(outbox.add(job.name, run_id, c.name, event, msg), c) for c in chans]
        return _deliver_queued(outbox, [(i, c, msg) for i, c in queued], log, ATTEMPTS)
    finally:
        if own:
            journal.close()


def _deliver_queued(outbox: Outbox, items: list[tuple[int, Any, dict[str, Any]]], log: logging.Logger,
                    attempts: int) -> bool:
    claimed = [(i, c, m) for i, c, m in items if outbox.claim(i)]
    errors = deliver([(c, m) for _, c, m in claimed], log, attempts)
    for (row_id, cfg, msg), err in zip(claimed, errors, strict=False):
        if err is None:
            outbox.delivered(row_id)
        else:
            outbox.failed(row_id, f"{err.__class__.__name__}: {err}")
            _warn(log, cfg, msg["event"], err, queued=True)
    return not any(errors)


def flush(jobs: list[Job], log: logging.Logger, attempts: int = ATTEMPTS) -> tuple[int, int]:
    """Deliver what is queued for these jobs: (delivered, still failing)."""
    delivered = failed = 0
    by_dir: dict[str, list[Job]] = {}
    for job in jobs:
        by_dir.setdefault(str(job.state_dir), []).append(job)
    for jobs_here in by_dir.values():
        state_dir = jobs_here[0].state_dir
        journal = Journal.open_existing(state_dir)
        if journal is None:
            continue
        with journal:
            outbox = Outbox(journal)
            names = {j.name: j for j in jobs_here}
            for job in jobs_here:
                protect_secrets(job)  # a command channel must not see them
            items = []
            for row in outbox.pending():
                owner = names.get(row.job)
                if owner is None:
                    continue  # a job of another config sharing this state dir
                cfg = next((c for c in owner.notify if c.name == row.channel), None)
                if cfg is None:
                    outbox.drop(row.id, f"channel {row.channel} is no longer configured")
                    log.warning("dropped a queued %s notification for channel %s: no longer configured",
                                row.event, row.channel)
                    continue
                items.append((row.id, cfg, row.payload))
            if items:
                ok = _deliver_queued(outbox, items, log, attempts)
                pending_after = {r.id for r in outbox.pending()}
                done = sum(1 for i, _, _ in items if i not in pending_after)
                delivered += done
                failed += len(items) - done
                if ok:
                    log.info("delivered %d queued notification(s)", done)
    return delivered, failed


class RunNotifier:
    """What a run calls: the healthchecks /start ping, and the outcome through the outbox."""

    def __init__(self, log: logging.Logger) -> None:
        self.log = log

    def run_started(self, job: Job, run_id: str) -> None:
        # /start only where a success ping will follow: otherwise healthchecks
        # would report every good run as down after its grace time.
        for cfg in job.notify:
            if cfg.type == "healthchecks" and "success" in cfg.on:
                try:
                    _channels().ping_start(cfg, run_id, START_TIMEOUT)
                except Exception as exc:  # noqa: BLE001 - a ping never stops a backup
                    self.log.warning("healthchecks /start ping via %s failed: %s", _channels().describe(cfg), exc)

    def run_finished(self, job: Job, row: RunRow, extra: dict[str, Any]) -> None:
        msg = run_message(row, extra)
        dispatch(job, msg["event"], msg, self.log, run_id=row.run_id)
