"""Cron expressions and systemd calendar specs: parsing, conversion, firing times.

Pure: a `[schedule] cron` expression as croniter reads it becomes a numbers-only
cron line (Debian's cron reads day fields differently when one starts with `*`)
and the `OnCalendar=` values of one timer (two when both day fields are
restricted: cron's day-of-month OR day-of-week rule); `Calendar` evaluates the
subset of systemd's calendar syntax vigil writes and reads back.
"""

from __future__ import annotations

import calendar
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime, timedelta

KEYWORDS = {"@hourly": "0 * * * *", "@daily": "0 0 * * *", "@midnight": "0 0 * * *", "@weekly": "0 0 * * 0",
            "@monthly": "0 0 1 * *", "@yearly": "0 0 1 1 *", "@annually": "0 0 1 1 *"}

_NAMES = re.compile(r"JAN|FEB|MAR|APR|MAY|JUN|JUL|AUG|SEP|OCT|NOV|DEC|SUN|MON|TUE|WED|THU|FRI|SAT", re.I)
_UNSUPPORTED = {"L": "'L' (last day)", "W": "'W' (nearest weekday)", "#": "'#' (nth weekday)",
                "H": "'H' (hashed value)", "R": "'R' (random value)"}
_WEEKDAYS = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"]
_FIELD_RANGES = ((0, 59), (0, 23), (1, 31), (1, 12), (0, 6))


@dataclass(frozen=True)
class CronSchedule:
    """A 5-field cron expression as croniter reads it. `dom`/`dow` are None when unrestricted;
    when both are restricted a day matches either (cron's OR rule)."""

    minutes: tuple[int, ...]
    hours: tuple[int, ...]
    dom: tuple[int, ...] | None
    months: tuple[int, ...]
    dow: tuple[int, ...] | None

    def cron(self) -> str:
        """The expression in the grammar every cron shares: numbers, ranges and lists only.
        A restricted day field is never written starting with `*`: Vixie cron (Debian's) ANDs
        day-of-month and day-of-week when either starts with `*`, croniter does not."""
        def listed(values: tuple[int, ...]) -> str:
            return ",".join(f"{a}-{b}" if b > a + 1 else f"{a},{b}" if b == a + 1 else f"{a}"
                            for a, b in _runs(values))

        def full_or_listed(values: tuple[int, ...], size: int) -> str:
            return "*" if len(values) == size else listed(values)

        dom = "*" if self.dom is None else listed(self.dom)
        dow = "*" if self.dow is None else listed(self.dow)
        return (f"{full_or_listed(self.minutes, 60)} {full_or_listed(self.hours, 24)} {dom} "
                f"{full_or_listed(self.months, 12)} {dow}")

    def on_calendars(self) -> list[str]:
        """OnCalendar= values that together fire exactly when the cron expression does:
        with both day fields restricted, one value per field (cron's OR rule)."""
        time = f"{_sd_field(self.hours, 0, 23)}:{_sd_field(self.minutes, 0, 59)}:00"
        months = _sd_field(self.months, 1, 12)
        by_dom = f"*-{months}-{_sd_field(self.dom, 1, 31)} {time}"
        if self.dow is None:
            return [by_dom]
        by_dow = f"{_sd_weekdays(self.dow)} *-{months}-* {time}"
        return [by_dow] if self.dom is None else [by_dom, by_dow]


def _runs(values: tuple[int, ...]) -> list[tuple[int, int]]:
    """Sorted values as (first, last) runs of consecutive numbers."""
    out: list[tuple[int, int]] = []
    for v in sorted(values):
        if out and v == out[-1][1] + 1:
            out[-1] = (out[-1][0], v)
        else:
            out.append((v, v))
    return out


def _sd_field(values: tuple[int, ...] | None, lo: int, hi: int) -> str:
    """A calendar component: `*`, `a/step` (a repetition to the field's end), or `a..b` runs and values."""
    if values is None or len(values) == hi - lo + 1:
        return "*"
    vs = sorted(values)
    if len(vs) >= 3:
        step = vs[1] - vs[0]
        if step > 1 and vs == list(range(vs[0], hi + 1, step)):
            return f"{vs[0]:02d}/{step}"
    return ",".join(f"{a:02d}..{b:02d}" if b > a + 1 else f"{a:02d},{b:02d}" if b == a + 1 else f"{a:02d}"
                    for a, b in _runs(tuple(vs)))


def _sd_weekdays(days: tuple[int, ...]) -> str:
    """Weekdays in systemd's order (Mon..Sun), runs of three or more as ranges."""
    order = tuple(7 if d == 0 else d for d in days)  # systemd's week starts on Monday
    parts = []
    for a, b in _runs(order):
        first, last = _WEEKDAYS[a % 7], _WEEKDAYS[b % 7]
        parts.append(f"{first}..{last}" if b > a + 1 else f"{first},{last}" if b == a + 1 else first)
    return ",".join(parts)


def parse_cron(expr: str) -> CronSchedule:
    """Read a cron expression the way croniter does; raise ValueError("cron: ...") for what
    cron (Debian's) or a systemd timer cannot express, and for an expression that never fires."""
    try:
        return _parse_cron(expr)
    except ValueError as exc:
        raise ValueError(f"cron: {exc}") from None


def _parse_cron(expr: str) -> CronSchedule:
    from croniter import croniter

    text = expr.strip()
    fields = (KEYWORDS.get(text.lower()) or "").split() if text.startswith("@") else text.split()
    if text.startswith("@") and not fields:
        raise ValueError(f"{expr!r}: unknown nickname (use one of {', '.join(KEYWORDS)})")
    if len(fields) != 5:
        raise ValueError(f"{expr!r}: give 5 fields (minute hour day-of-month month day-of-week); "
                         "cron has no seconds or year field")
    for f in fields:
        bad = re.sub(r"[0-9*,/?-]", "", _NAMES.sub("", f)).upper()
        if bad:
            what = _UNSUPPORTED.get(bad[0], repr(bad[0]))
            raise ValueError(f"{expr!r}: {what} cannot be written as both a cron line and a systemd timer; "
                             "use numbers, names, ranges, steps and lists")
    if not croniter.is_valid(" ".join(fields)):
        raise ValueError(f"invalid cron expression {expr!r}")
    expanded, _nth = croniter.expand(" ".join(fields))

    def values(i: int) -> tuple[int, ...] | None:
        if "*" in expanded[i]:  # croniter sorts it first: the field is unrestricted ("*,*/2")
            return None
        return tuple(sorted({int(v) for v in expanded[i]}))

    sched = CronSchedule(
        minutes=values(0) or tuple(range(60)),
        hours=values(1) or tuple(range(24)),
        dom=values(2),
        months=values(3) or tuple(range(1, 13)),
        dow=values(4),
    )
    if sched.dow is None and sched.dom is not None and not any(
            d <= (29 if m == 2 else calendar.monthrange(2001, m)[1]) for m in sched.months for d in sched.dom):
        raise ValueError(f"{expr!r}: never fires (none of its months has such a day)")
    return sched


# --- systemd calendar specs: the subset vigil writes, and the common short forms ------------

_SHORTHANDS = {"minutely": "*-*-* *:*:00", "hourly": "*-*-* *:00:00", "daily": "*-*-* 00:00:00",
               "monthly": "*-*-01 00:00:00", "weekly": "Mon *-*-* 00:00:00", "yearly": "*-01-01 00:00:00",
               "annually": "*-01-01 00:00:00", "quarterly": "*-01,04,07,10-01 00:00:00",
               "semiannually": "*-01,07-01 00:00:00"}
_SD_DAYS = {n.lower(): i for i, n in enumerate(["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"])}


@dataclass(frozen=True)
class Calendar:
    """A parsed OnCalendar= value (no time zones, no `~` last-day forms)."""

    weekdays: frozenset[int] | None  # Python's weekday(): Monday = 0
    years: frozenset[int] | None
    months: frozenset[int]
    days: frozenset[int]
    hours: tuple[int, ...]
    minutes: tuple[int, ...]
    seconds: tuple[int, ...]

    @classmethod
    def parse(cls, spec: str) -> Calendar | None:
        """None for forms outside this subset (the caller then knows nothing about its firings)."""
        text = _SHORTHANDS.get(spec.strip().lower(), spec.strip())
        parts = text.split()
        try:
            weekdays = None
            if parts and re.match(r"[A-Za-z]", parts[0]):
                weekdays = _sd_weekday_set(parts.pop(0))
            date_part = parts.pop(0) if parts and ":" not in parts[0] else "*-*-*"
            time_part = parts.pop(0) if parts else "00:00:00"
            if parts or "~" in date_part:
                return None
            dparts = date_part.split("-")
            if len(dparts) == 2:
                dparts = ["*", *dparts]
            tparts = time_part.split(":")
            if len(dparts) != 3 or len(tparts) not in (2, 3):
                return None
            if len(tparts) == 2:
                tparts.append("00")
            years = None if dparts[0] == "*" else frozenset(_sd_values(dparts[0], 1970, 2199))
            return cls(weekdays, years, frozenset(_sd_values(dparts[1], 1, 12)),
                       frozenset(_sd_values(dparts[2], 1, 31)), tuple(_sd_values(tparts[0], 0, 23)),
                       tuple(_sd_values(tparts[1], 0, 59)), tuple(_sd_values(tparts[2], 0, 59)))
        except (ValueError, KeyError, IndexError):
            return None

    def day_matches(self, d: date) -> bool:
        return ((self.weekdays is None or d.weekday() in self.weekdays)
                and (self.years is None or d.year in self.years)
                and d.month in self.months and d.day in self.days)

    def fires(self, start: datetime, end: datetime) -> Iterator[datetime]:
        """Every firing in [start, end), in order."""
        d = start.date()
        while d <= end.date():
            if self.day_matches(d):
                for h in self.hours:
                    for m in self.minutes:
                        for s in self.seconds:
                            t = datetime(d.year, d.month, d.day, h, m, s, tzinfo=start.tzinfo)
                            if start <= t < end:
                                yield t
            d += timedelta(days=1)


def _sd_values(component: str, lo: int, hi: int) -> list[int]:
    out: set[int] = set()
    for item in component.split(","):
        m = re.fullmatch(r"(\*|\d+)(?:\.\.(\d+))?(?:/(\d+))?", item)
        if not m:
            raise ValueError(item)
        a, b, step = m.groups()
        first = lo if a == "*" else int(a)
        last = hi if a == "*" or (step and not b) else int(b) if b else first
        out.update(range(first, last + 1, int(step) if step else 1))
    return sorted(v for v in out if lo <= v <= hi)


def _sd_weekday_set(component: str) -> frozenset[int]:
    out: set[int] = set()
    for item in component.split(","):
        a, _, b = item.partition("..")
        first = _SD_DAYS[a.lower()[:3]]
        last = _SD_DAYS[b.lower()[:3]] if b else first
        out.update(range(first, last + 1))
    return frozenset(out)




def verify_every_cron(every: timedelta, minute: int = 30, hour: int = 4) -> str:
    """A duration as a cron expression; ValueError for one cron cannot repeat evenly."""
    s = int(every.total_seconds())
    if s == 604800:
        return f"{minute} {hour} * * 0"
    if s == 86400:
        return f"{minute} {hour} * * *"
    if s % 3600 == 0 and 24 % (s // 3600) == 0:
        return f"{minute} {'*' if s == 3600 else f'*/{s // 3600}'} * * *"
    if s % 60 == 0 and s < 3600 and 60 % (s // 60) == 0:
        return "* * * * *" if s == 60 else f"*/{s // 60} * * * *"
    raise ValueError("cannot be repeated evenly by cron or a systemd timer: use a divisor of 60 minutes "
                     "(\"15m\"), of 24 hours (\"6h\"), \"1d\" or \"7d\"")
