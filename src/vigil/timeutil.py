"""Time helpers: UTC everywhere, ISO 8601 with a Z, and duration strings."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import overload

_DURATION = re.compile(r"(?:\d+[wdhms])+")
_DURATION_PART = re.compile(r"(\d+)([wdhms])")
_UNITS = {"w": 604800, "d": 86400, "h": 3600, "m": 60, "s": 1}
# Durations are added to and subtracted from today's date: past a century the
# arithmetic leaves datetime's range, and no backup setting means that long.
MAX_DURATION = timedelta(days=36500)


def utcnow() -> datetime:
    return datetime.now(UTC)


@overload
def iso(ts: float | datetime) -> str: ...
@overload
def iso(ts: None) -> None: ...
@overload
def iso(ts: float | datetime | None) -> str | None: ...


def iso(ts: float | datetime | None) -> str | None:
    """ISO 8601 UTC with millisecond precision and a trailing Z."""
    if ts is None:
        return None
    dt = ts if isinstance(ts, datetime) else datetime.fromtimestamp(ts, UTC)
    return dt.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def parse_iso(text: str) -> datetime:
    dt = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return dt if dt.tzinfo else dt.replace(tzinfo=UTC)


def parse_duration(text: str) -> timedelta:
    """Parse "90s", "30m", "3h", "7d", "2w" or combinations such as "1h30m"."""
    if not isinstance(text, str):
        raise ValueError(f"duration must be a string like \"30m\", got {text!r}")
    s = text.strip().lower()
    if not _DURATION.fullmatch(s):
        raise ValueError(f"bad duration {text!r} (use e.g. \"90s\", \"30m\", \"3h\", \"7d\")")
    parts = _DURATION_PART.findall(s)
    # Python refuses to convert numbers of thousands of digits: such a number is too long anyway.
    total = sum(int(n) * _UNITS[u] if len(n) < 20 else 1 << 64 for n, u in parts)
    if total > MAX_DURATION.total_seconds():
        raise ValueError(f"duration {text!r} is too long (at most {MAX_DURATION.days}d)")
    return timedelta(seconds=total)


def format_duration(seconds: float) -> str:
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds}s"
    parts = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        n, seconds = divmod(seconds, size)
        if n:
            parts.append(f"{n}{unit}")
    return "".join(parts[:2])
