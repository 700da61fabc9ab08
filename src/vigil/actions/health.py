"""Health of each job (SPEC §5): a pure evaluation and its renderers.

`evaluate(facts, now)` takes plain values gathered from the destinations
(the committed manifests, which survive the loss of the server's disk) and
from the journal (when there is one) and returns a status with reasons.
Gathering lives in `gather()`; nothing else here touches the outside world.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, tzinfo
from typing import Any

from vigil.state.journal import Outcome, RunRow, VerifyRow
from vigil.timeutil import format_duration, iso

OK, WARNING, CRITICAL, UNKNOWN = "OK", "WARNING", "CRITICAL", "UNKNOWN"
EXIT = {OK: 0, WARNING: 1, CRITICAL: 2, UNKNOWN: 3}
RANK = {OK: 0, WARNING: 1, UNKNOWN: 2, CRITICAL: 3}  # worst first when combining jobs
DUPLICATE_WINDOW = timedelta(hours=24)
DEFAULT_MAX_AGE = timedelta(hours=25)  # without [schedule]: a daily job plus an hour of slack
DEFAULT_GRACE = timedelta(hours=3)
STUCK_AFTER = timedelta(minutes=15)
CLOCK_SKEW = timedelta(minutes=5)  # a time further ahead of now than this is a wrong clock, not news


@dataclass
class Newest:
    """The two newest complete backups on one destination (or an error reaching it)."""

    destination: str
    error: str | None = None
    times: list[datetime] = field(default_factory=list)  # newest first, at most two
    ids: list[str] = field(default_factory=list)  # of the same backups
    sizes: list[int] = field(default_factory=list)  # stored bytes
    # Bytes of the state each stands for (SPEC §11): an incremental stores little but stands
    # for the whole tree, so a size drop is judged on these.
    state_sizes: list[int] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)  # of the newest
    damaged: str | None = None  # the newest backup's id and why its manifest does not check out


@dataclass
class Facts:
    job: str
    max_age: timedelta | None  # None: only the schedule bounds the age
    max_runtime: timedelta
    destinations: list[Newest]
    runs: list[RunRow]  # newest first
    lock_held: bool = False
    stuck_notifications: int = 0
    journal_error: str | None = None
    schedule: str | None = None  # the cron expression of [schedule]
    grace: timedelta = DEFAULT_GRACE
    tz: tzinfo = UTC  # the zone cron reads the schedule in (the host's)
    verifications: list[VerifyRow] = field(default_factory=list)  # newest first
    # When the job last reported a finished run from its host (a fleet view's status object):
    # a report older than its schedule allows means the host stopped running it. None: not judged.
    reported_at: datetime | None = None


@dataclass
class JobHealth:
    job: str
    status: str
    reasons: list[str]
    last_success_at: datetime | None = None
    last_backup_bytes: int | None = None
    last_run_duration: float | None = None
    age_seconds: float | None = None
    max_age: timedelta | None = None
    host: str | None = None  # a fleet view's: the host its status object names

    def to_json(self) -> dict[str, Any]:
        out = {"job": self.job, "status": self.status, "reasons": self.reasons,
               "last_success_at": iso(self.last_success_at), "last_backup_bytes": self.last_backup_bytes,
               "last_run_duration_seconds": self.last_run_duration, "age_seconds": self.age_seconds}
        return out if self.host is None else {**out, "host": self.host}


def _end(r: RunRow, runs: list[RunRow], now: float) -> float:
    """When an attempt stopped running.

    A died run's finished_at is when a later run on its host found it dead,
    after that run had started: but that run took the lock, so the dead one
    had stopped before it began, and a run that starts after the previous
    one ended is never a duplicate.
    """
    end = r.finished_at if r.finished_at is not None else now
    if r.outcome == Outcome.DIED:
        takers = [o.started_at for o in runs
                  if o.host == r.host and o.outcome != Outcome.SKIPPED and o.started_at > r.started_at]
        end = min([end, *takers])
    return end


def _overlaps(runs: list[RunRow], now: float) -> list[list[RunRow]]:
    """Groups of attempts that overlapped in time: one started while another was running."""
    spans = sorted(((r.started_at, _end(r, runs, now), r) for r in runs), key=lambda s: s[0])
    groups: list[list[RunRow]] = []
    current: list[RunRow] = []
    end = None
    for start, stop, r in spans:
        if current and end is not None and start < end:  # started before the other ended
            current.append(r)
            end = max(end, stop)
        else:
            if len(current) > 1:
                groups.append(current)
            current, end = [r], stop
    if len(current) > 1:
        groups.append(current)
    return groups


def next_due(cron: str, after: datetime, tz: tzinfo) -> datetime:
    """The first time the schedule fires strictly after `after`, read in the host's zone as cron does."""
    from croniter import croniter  # only for jobs that have a schedule

    due: datetime = croniter(cron, after.astimezone(tz)).get_next(datetime)
    return due


def _at(t: datetime, tz: tzinfo) -> str:
    return t.astimezone(tz).strftime("%Y-%m-%d %H:%M:%S %Z").rstrip()


def _deadline(f: Facts, due: datetime) -> datetime:
    """When the backup due at `due` must be committed.

    `grace` after the due time; but a run still alive that started within
    that window is given its full `max_runtime` to commit: a long backup
    that is on its way is not a missed one (a stuck one is, at max_runtime).
    """
    deadline = due + f.grace
    if not f.lock_held:
        return deadline
    for r in f.runs:
        started = datetime.fromtimestamp(r.started_at, UTC)
        if r.outcome == Outcome.RUNNING and due <= started <= due + f.grace:
            deadline = max(deadline, started + f.max_runtime)
    return deadline


def _too_old(f: Facts, newest: datetime, now: datetime) -> list[str]:
    """With a schedule: the run due after the newest backup is more than `grace` late.
    With max_age (the default without a schedule): the newest backup is older than that."""
    reasons = []
    if f.schedule:
        due = next_due(f.schedule, newest, f.tz)
        if now > _deadline(f, due):
            reasons.append(f"the backup due at {_at(due, f.tz)} is missing "
                           f"({format_duration((now - due).total_seconds())} late, grace "
                           f"{format_duration(f.grace.total_seconds())}; newest started {_at(newest, f.tz)})")
    age = now - newest
    if f.max_age is not None and age > f.max_age:
        reasons.append(f"newest backup is {format_duration(age.total_seconds())} "
                       f"old (max_age {format_duration(f.max_age.total_seconds())})")
    return reasons


def _stale_report(f: Facts, now: datetime) -> str | None:
    """The job's host last reported longer ago than its schedule (or max_age) allows: the
    next run was due, and its report, written whatever the outcome, never came."""
    if f.reported_at is None:
        return None
    since = (f"no run has reported since the one started {_at(f.reported_at, f.tz)} (the host stopped running "
             "the job, or cannot reach the store)")
    if f.schedule:
        due = next_due(f.schedule, f.reported_at, f.tz)
        if now > due + f.grace + f.max_runtime:
            return f"{since}: the run due at {_at(due, f.tz)} never reported"
    elif f.max_age is not None and now - f.reported_at > f.max_age + f.max_runtime:
        return f"{since}: older than max_age {format_duration(f.max_age.total_seconds())}"
    return None


def _where(d: Newest) -> str:
    """How a reason names its destination; a fleet view reads one store and names none."""
    return f"destination {d.destination}: " if d.destination else ""


def _damaged(f: Facts, d: Newest) -> str | None:
    """The newest backup's last verify on this destination found it damaged (a newer backup clears it)."""
    if not d.ids:
        return None
    last = next((v for v in f.verifications if v.destination == d.destination and v.backup_id == d.ids[0]), None)
    if last is None or last.ok:
        return None
    return f"newest backup {last.backup_id} was found damaged by verify at {iso(last.verified_at)}: {last.reason}"


def evaluate(f: Facts, now: datetime) -> JobHealth:
    crit: list[str] = []
    warn: list[str] = []
    ts = now.timestamp()
    newest_all = [d.times[0] for d in f.destinations if d.times]
    h = JobHealth(f.job, OK, [], max_age=f.max_age)

    for d in f.destinations:
        where = _where(d)
        if d.damaged:
            crit.append(f"{where}newest backup is damaged: {d.damaged}")
        if d.error:
            crit.append(f"destination {d.destination} unreachable: {d.error}" if d.destination
                        else f"unreadable: {d.error}")
        elif not d.times:
            crit.append(f"{where}no complete backup")
        else:
            # A backup dated ahead of now (a wrong clock) says nothing of how fresh the job is:
            # freshness is judged on the newest one that is not.
            dated = [t for t in d.times if t <= now + CLOCK_SKEW]
            if d.times[0] > now + CLOCK_SKEW:
                warn.append(f"{where}newest backup is dated in the future ({iso(d.times[0])}): clock skew?")
            if dated:
                crit += [f"{where}{r}" for r in _too_old(f, dated[0], now)]
            else:
                crit.append(f"{where}no complete backup dated before now")
            damaged = _damaged(f, d)
            if damaged:
                crit.append(f"{where}{damaged}")
            state = d.state_sizes or d.sizes
            if len(state) == 2 and state[0] < state[1] / 2:
                warn.append(f"{where}newest backup ({state[0]} bytes) is less than half "
                            f"the size of the previous one ({state[1]} bytes)")
    if f.reported_at is not None and f.reported_at > now + CLOCK_SKEW:
        warn.append(f"the last run's report is dated in the future ({iso(f.reported_at)}): clock skew?")
    stale = _stale_report(f, now)
    if stale:
        crit.append(stale)
    if newest_all:
        h.last_success_at = max(newest_all)
        h.age_seconds = round((now - h.last_success_at).total_seconds(), 3)
        best = next(d for d in f.destinations if d.times and d.times[0] == h.last_success_at)
        h.last_backup_bytes = best.sizes[0]

    finished = [r for r in f.runs if r.outcome.finished]
    running = [r for r in f.runs if r.outcome == Outcome.RUNNING]
    if finished:
        last = finished[0]
        # A died run's finished_at is when a later run found it dead, not how long it ran.
        if last.finished_at and last.outcome != Outcome.DIED:
            h.last_run_duration = round(last.finished_at - last.started_at, 3)
        if last.outcome.failed:
            crit.append(f"last run {last.run_id} {last.outcome}" + (f" at step {last.step}" if last.step else "")
                        + (f": {last.error}" if last.error else ""))
        elif last.warnings:
            warn.append(f"last run {last.run_id} had {len(last.warnings)} warning(s): {last.warnings[0]}")
    for r in running:
        if not f.lock_held:
            crit.append(f"run {r.run_id} (pid {r.pid}) died without finishing, during step {r.step or 'start'}")
        elif ts - r.started_at > f.max_runtime.total_seconds():
            warn.append(f"run {r.run_id} (pid {r.pid}) has held the lock for "
                        f"{format_duration(ts - r.started_at)} (max_runtime "
                        f"{format_duration(f.max_runtime.total_seconds())}), stuck in step {r.step}")

    recent = [r for r in f.runs if (r.finished_at or ts) >= ts - DUPLICATE_WINDOW.total_seconds()]
    for group in _overlaps(recent, ts):
        starters = "; ".join(f"{r.run_id} started by {r.started_by or '?'}" for r in group)
        warn.append(f"{len(group)} attempts overlapped in time (a duplicate schedule?): {starters}")

    if f.stuck_notifications:
        warn.append(f"{f.stuck_notifications} notification(s) stuck in the outbox (see `vigil notify flush`)")
    if f.journal_error:
        warn.append(f"journal unreadable: {f.journal_error}")

    h.reasons = crit + warn
    h.status = CRITICAL if crit else WARNING if warn else OK
    return h


def overall(results: list[JobHealth]) -> str:
    return max((r.status for r in results), key=RANK.__getitem__, default=UNKNOWN)


# --- renderers -------------------------------------------------------------------------


def render_text(results: list[JobHealth]) -> str:
    lines = []
    for r in results:
        age = format_duration(r.age_seconds) if r.age_seconds is not None else "-"
        lines.append(f"{r.job}: {r.status}  (newest backup {age} old, {r.last_backup_bytes or 0} bytes)")
        lines += [f"  - {reason}" for reason in r.reasons]
    return "\n".join(lines)


NAGIOS_JOBS = 10  # bad jobs named on the line; a fleet of them would outgrow what a monitoring system keeps


def nagios_summary(results: list[JobHealth]) -> str:
    """`VIGIL STATUS - job: first reason; ...`, the first line of a Nagios plugin's output."""
    bad = sorted((r for r in results if r.status != OK), key=lambda r: -RANK[r.status])
    named = [f"{r.job}: {r.reasons[0] if r.reasons else r.status}"
             + (f" (+{len(r.reasons) - 1} more)" if len(r.reasons) > 1 else "") for r in bad[:NAGIOS_JOBS]]
    if len(bad) > NAGIOS_JOBS:
        named.append(f"and {len(bad) - NAGIOS_JOBS} more job(s) not OK")
    summary = "; ".join(named) or f"{len(results)} job(s) healthy"
    return f"VIGIL {overall(results)} - {' '.join(summary.split())}".replace("|", "/")


def render_nagios(results: list[JobHealth]) -> str:
    perf = []  # labels unquoted, as SPEC writes them: job names never hold spaces, quotes or '='
    for r in results:
        suffix = "" if len(results) == 1 else f"_{r.job}"
        crit = int(r.max_age.total_seconds()) if r.max_age else ""
        if r.age_seconds is not None:
            perf.append(f"age{suffix}={int(r.age_seconds)}s;;{crit};0;")
        if r.last_backup_bytes is not None:
            perf.append(f"size{suffix}={r.last_backup_bytes}B;;;0;")
    return nagios_summary(results) + (" | " + " ".join(perf) if perf else "")


def render_json(results: list[JobHealth]) -> str:
    return json.dumps({"status": overall(results), "jobs": [r.to_json() for r in results]}, indent=2)


def _label(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def render_prometheus(results: list[JobHealth]) -> str:
    metrics = [
        ("vigil_last_success_timestamp_seconds", "Start time of the newest complete backup",
         lambda r: r.last_success_at.timestamp() if r.last_success_at else None),
        ("vigil_last_backup_bytes", "Size of the newest complete backup", lambda r: r.last_backup_bytes),
        ("vigil_last_run_duration_seconds", "Duration of the last finished run", lambda r: r.last_run_duration),
        ("vigil_backup_age_seconds", "Age of the newest complete backup", lambda r: r.age_seconds),
        ("vigil_health_status", "0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN", lambda r: EXIT[r.status]),
    ]
    out = []
    for name, help_, get in metrics:
        out += [f"# HELP {name} {help_}", f"# TYPE {name} gauge"]
        for r in results:
            value = get(r)  # type: ignore[no-untyped-call]
            if value is not None:
                out.append(f'{name}{{job="{_label(r.job)}"}} {value}')
    return "\n".join(out) + "\n"


RENDERERS = {"text": render_text, "nagios": render_nagios, "json": render_json, "prometheus": render_prometheus}


def transition(previous: str | None, current: str, notified_at: float | None, now: float,
               renotify: timedelta) -> str | None:
    """Which event `health --notify` sends: once per change, repeated while bad every `renotify`."""
    bad = current != OK
    was_bad = previous is not None and previous != OK
    if bad and (previous is None or RANK[current] > RANK[previous]):
        return "unhealthy"  # turned bad, got worse, or bad when first seen
    if bad and (notified_at is None or now - notified_at >= renotify.total_seconds()):
        return "unhealthy"
    if not bad and was_bad:
        return "recovered"
    return None
