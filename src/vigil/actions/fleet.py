"""`vigil fleet`: health of every job under a store's prefix, from its status object and newest manifest.

The store is read by destinations/fleet.py; here each job folder becomes the
facts of SPEC §5 that it holds (its own thresholds, its last run, its newest
backup, when it last reported) and is judged by the same `evaluate` as
`vigil health`. Pure but for `check_fleet`, which reads.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone, tzinfo
from typing import Any

from vigil.actions.health import (
    DEFAULT_GRACE,
    DEFAULT_MAX_AGE,
    RANK,
    UNKNOWN,
    WARNING,
    Facts,
    JobHealth,
    Newest,
    evaluate,
    next_due,
)
from vigil.destinations.fleet import MAX_DEPTH, JobFolder, open_store, read_fleet
from vigil.formats.manifest import parse_iso
from vigil.state.journal import Outcome, RunRow

TOO_DEEP_SHOWN = 3  # folder names listed in the one line that says they were not searched
DEFAULT_MAX_RUNTIME = timedelta(hours=6)  # [health] max_runtime's default, for a status that does not say


@dataclass
class FleetJob:
    folder: JobFolder
    health: JobHealth


class _Bad(ValueError):
    """A value of a status object that is not what vigil writes."""


def _get(st: dict[str, Any], key: str, kind: type | tuple[type, ...]) -> Any:
    value = st.get(key)
    if value is None:
        return None
    if not isinstance(value, kind) or isinstance(value, bool):
        raise _Bad(f"{key}: {str(value)[:80]!r} is not what vigil writes")
    return value


def _seconds(st: dict[str, Any], key: str) -> timedelta | None:
    value = _get(st, key, (int, float))
    if value is None:
        return None
    if not 0 < value < 100 * 365 * 86400:
        raise _Bad(f"{key}: {value} is not a duration")
    return timedelta(seconds=value)


def _time(st: dict[str, Any], key: str) -> float | None:
    text = _get(st, key, str)
    try:
        return None if text is None else parse_iso(text).timestamp()
    except (ValueError, OverflowError):
        raise _Bad(f"{key}: {text[:80]!r} is not an ISO 8601 time") from None


def zone(st: dict[str, Any]) -> tzinfo:
    """The zone the job's host reads its schedule in: its IANA name, else its offset, else UTC."""
    from zoneinfo import ZoneInfo

    name = st.get("timezone")
    if isinstance(name, str) and name:
        try:
            return ZoneInfo(name)
        except (ValueError, OSError, KeyError):  # ZoneInfoNotFoundError is a KeyError
            pass  # a name this host does not know: fall back to the offset
    offset = st.get("utc_offset_seconds")
    if isinstance(offset, int) and not isinstance(offset, bool) and abs(offset) < 86400:
        return timezone(timedelta(seconds=offset))
    return UTC


def _schedule(st: dict[str, Any], tz: tzinfo) -> str | None:
    schedule: str | None = _get(st, "schedule", str)
    if schedule is not None:
        try:
            next_due(schedule, datetime.now(UTC), tz)
        except Exception:  # noqa: BLE001 - croniter's errors for text it cannot read are of several kinds
            raise _Bad(f"schedule: {schedule[:80]!r} is not a cron expression") from None
    return schedule


def _lenient(problems: list[str], value: Callable[[], Any]) -> Any:
    """A value of the status object, or None (its default applies) with its problem noted."""
    try:
        return value()
    except _Bad as exc:
        problems.append(f"status.json: {exc}")
        return None


def _thresholds(f: Facts, st: dict[str, Any]) -> list[str]:
    """Each threshold on its own: a bad one is a problem and its default applies, the others still count."""
    problems: list[str] = []
    f.schedule = _lenient(problems, lambda: _schedule(st, f.tz))
    f.grace = _lenient(problems, lambda: _seconds(st, "grace_seconds")) or DEFAULT_GRACE
    f.max_age = _lenient(problems, lambda: _seconds(st, "max_age_seconds")) or (
        None if f.schedule else DEFAULT_MAX_AGE)
    f.max_runtime = _lenient(problems, lambda: _seconds(st, "max_runtime_seconds")) or DEFAULT_MAX_RUNTIME
    return problems


def _last_run(folder: JobFolder, st: dict[str, Any], problems: list[str]) -> RunRow | None:
    """The last run the status reports; a bad detail of it (its step, its end) is a problem, not the run lost."""
    outcome = _get(st, "outcome", str)
    started = _time(st, "started_at")
    if outcome is None or started is None:
        return None
    if outcome not in set(Outcome):
        raise _Bad(f"outcome: {outcome[:80]!r} is not one of vigil's")
    run_id = _lenient(problems, lambda: _get(st, "run_id", str)) or "?"
    newest = folder.newest
    # The run that committed the newest backup: its warnings are that manifest's.
    warnings = newest.warnings if newest is not None and newest.id == run_id else []
    return RunRow(run_id, folder.name, 0, _lenient(problems, lambda: _get(st, "host", str)) or "?", started,
                  Outcome(outcome), finished_at=_lenient(problems, lambda: _time(st, "finished_at")),
                  step=_lenient(problems, lambda: _get(st, "step", str)),
                  error=_lenient(problems, lambda: _get(st, "error", str)), warnings=warnings)


def facts(folder: JobFolder) -> tuple[Facts, list[str]]:
    """What a job folder holds, as health facts; and what is wrong with its status object."""
    where = Newest("", error=folder.error)
    if folder.newest is not None:
        m = folder.newest
        where.times, where.ids, where.sizes, where.warnings = [m.started], [m.id], [m.size], m.warnings
    if folder.damaged is not None:
        where.damaged = f"{folder.damaged.backup_id}: {folder.damaged.reason}"
    f = Facts(folder.path or folder.name, DEFAULT_MAX_AGE, DEFAULT_MAX_RUNTIME, [where], [])
    problems = [folder.status_error] if folder.status_error else []
    st = folder.status
    if st is None:
        return f, problems
    f.tz = zone(st)
    problems += _thresholds(f, st)
    try:
        run = _last_run(folder, st, problems)
        if run is not None:
            f.runs = [run]
            f.reported_at = datetime.fromtimestamp(run.started_at, UTC)
    except _Bad as exc:
        problems.append(f"status.json: {exc}")
    return f, problems


def judge(folder: JobFolder, now: datetime) -> JobHealth:
    if folder.too_deep:
        shown = ", ".join(folder.too_deep[:TOO_DEEP_SHOWN]) + (", ..." if len(folder.too_deep) > TOO_DEEP_SHOWN else "")
        return JobHealth(folder.path or folder.name, UNKNOWN, [
            f"not searched: {len(folder.too_deep)} folder(s) below {folder.path}/ ({shown}) lie deeper than "
            f"{MAX_DEPTH} levels under the fleet's root; point vigil fleet at a folder further down"])
    f, problems = facts(folder)
    h = evaluate(f, now)
    if problems:
        h.reasons += problems
        h.status = h.status if RANK[h.status] >= RANK[WARNING] else WARNING
    st = folder.status or {}
    host = st.get("host") if isinstance(st.get("host"), str) else None
    h.host = host or (folder.newest.host if folder.newest is not None else None)
    return h


def check_fleet(url: str, endpoint_url: str | None, now: datetime) -> list[FleetJob]:
    """Every job under the URL, judged; FleetError when the URL is none or cannot be listed."""
    jobs = read_fleet(open_store(url, endpoint_url))
    return [FleetJob(j, _judged(j, now)) for j in jobs]


def _judged(folder: JobFolder, now: datetime) -> JobHealth:
    try:
        return judge(folder, now)
    except Exception as exc:  # noqa: BLE001 - one strange folder must not hide the rest of the fleet
        return JobHealth(folder.path or folder.name, UNKNOWN, [f"cannot evaluate health: {exc}"])


def worst_first(jobs: list[FleetJob]) -> list[FleetJob]:
    return sorted(jobs, key=lambda j: (-RANK[j.health.status], j.health.job))


def deadline(f: Facts) -> datetime | None:
    """When the job's next backup must be committed: the run due after its newest backup plus
    grace, or the newest plus max_age (the earlier of the two when both are set)."""
    d = f.destinations[0] if f.destinations else None
    if d is None or not d.times:
        return None
    newest = d.times[0]
    bounds = []
    if f.schedule:
        bounds.append(next_due(f.schedule, newest, f.tz) + f.grace)
    if f.max_age is not None:
        bounds.append(newest + f.max_age)
    return min(bounds) if bounds else None
