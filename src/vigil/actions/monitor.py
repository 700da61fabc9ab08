"""The I/O around health: gather facts, remember state, notify, write metrics."""

from __future__ import annotations

import logging
import os
import socket
import tempfile
import time
from datetime import UTC, datetime, tzinfo

from vigil.actions.health import (
    DEFAULT_MAX_AGE,
    STUCK_AFTER,
    UNKNOWN,
    Facts,
    JobHealth,
    Newest,
    evaluate,
    render_prometheus,
    transition,
)
from vigil.config.schema import Job
from vigil.destinations.base import make_destination
from vigil.errors import VigilError
from vigil.state.journal import Journal, Outbox
from vigil.state.lock import JobLock


def local_zone() -> tzinfo:
    """The host's time zone, DST included: cron and systemd timers fire in it."""
    from dateutil.tz import tzlocal  # croniter's own dependency

    zone: tzinfo = tzlocal()
    return zone


def zone_name() -> str | None:
    """The host's zone by its IANA name ("Europe/Paris"), for a fleet view on another host to
    read this one's schedule in; None when the host does not say."""
    from zoneinfo import ZoneInfo

    candidates = [os.environ.get("TZ", "").lstrip(":")]
    try:
        candidates.append(os.path.realpath("/etc/localtime").partition("/zoneinfo/")[2])
    except OSError:
        pass
    for name in candidates:
        if not name or name.startswith("/"):
            continue
        try:
            ZoneInfo(name)
        except (ValueError, OSError, KeyError):  # not a zone this host's database knows
            continue
        return name
    return None


def gather(job: Job, now: datetime) -> Facts:
    dests = []
    for cfg in job.destination:
        n = Newest(cfg.name)
        try:
            scan = make_destination(cfg).scan(job.name)
            manifests = scan.complete[:2]
            if scan.damaged and (not manifests or scan.damaged[0].backup_id > manifests[0].id):
                n.damaged = f"{scan.damaged[0].backup_id}: {scan.damaged[0].reason}"
            n.times = [m.started for m in manifests]
            n.ids = [m.id for m in manifests]
            n.sizes = [m.size for m in manifests]
            n.state_sizes = [m.state_size for m in manifests]
            n.warnings = manifests[0].warnings if manifests else []
        except VigilError as exc:
            n.error = str(exc)
        except OSError as exc:
            n.error = exc.strerror or str(exc)
        dests.append(n)
    # Without a schedule the newest backup's age is all there is to judge by: 25h
    # by default. With one, the schedule decides, and max_age only when it is set.
    max_age = job.health.max_age or (None if job.schedule.cron else DEFAULT_MAX_AGE)
    facts = Facts(job.name, max_age, job.health.max_runtime, dests, [], schedule=job.schedule.cron,
                  grace=job.health.grace, tz=local_zone())
    facts.lock_held = JobLock(job.state_dir, job.name).is_held_elsewhere()
    journal = Journal.open_existing(job.state_dir)
    if journal is None:
        return facts  # a fresh server restored from scratch: the destinations speak alone
    with journal:
        facts.runs = journal.runs(job.name, since=now.timestamp() - 48 * 3600)  # running rows included
        if not any(r.outcome.finished for r in facts.runs):
            older = [r for r in journal.runs(job.name, limit=50) if r.outcome.finished]
            facts.runs += older[:1]
        facts.verifications = journal.verifications(job.name, {d.ids[0] for d in dests if d.ids})
        cutoff = now.timestamp() - STUCK_AFTER.total_seconds()
        facts.stuck_notifications = sum(1 for m in Outbox(journal).pending(job.name) if m.created_at < cutoff)
    return facts


def check(job: Job, now: datetime) -> JobHealth:
    try:
        return evaluate(gather(job, now), now)
    except Exception as exc:  # noqa: BLE001 - health must answer UNKNOWN, never crash
        return JobHealth(job.name, UNKNOWN, [f"cannot evaluate health: {exc}"])


def notify_transitions(job: Job, result: JobHealth, log: logging.Logger) -> str | None:
    """Send unhealthy/recovered once per transition; state lives in the journal."""
    from vigil.notify import dispatch
    from vigil.notify.message import health_message

    with Journal(job.state_dir) as journal:
        previous, notified_at = journal.health_state(job.name)
        now = time.time()
        event = transition(previous, result.status, notified_at, now, job.health.renotify)
        if event:
            msg = health_message(event, job.name, socket.gethostname(), result.status, result.reasons)
            dispatch(job, event, msg, log, journal=journal)
            notified_at = now
        journal.set_health_state(job.name, result.status, result.reasons, now, notified_at)
        return event


def write_textfile(job: Job, log: logging.Logger) -> None:
    """[metrics] textfile for node_exporter, replaced atomically."""
    path = job.metrics.textfile
    if path is None:
        return
    text = render_prometheus([check(job, datetime.now(UTC))])
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".vigil-", dir=path.parent)
        with os.fdopen(fd, "w") as fh:
            fh.write(text)
        os.chmod(tmp, 0o644)  # node_exporter runs as another user
        os.replace(tmp, path)
    except OSError as exc:
        log.warning("cannot write metrics to %s: %s", path, exc.strerror)
