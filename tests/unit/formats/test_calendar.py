"""Cron expressions as systemd timers, and systemd calendars read back.

croniter is the reference for what a cron expression means (health uses it
too); every expression `[schedule]` accepts must become OnCalendar= values that
fire at exactly the same minutes, and a cron line that Debian's cron reads the
same way.
"""

from __future__ import annotations

import os
import re
import subprocess
from datetime import datetime, timedelta

import pytest
from croniter import croniter
from helpers import systemd_analyze
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from vigil.formats.calendar import Calendar, parse_cron

START = datetime(2026, 1, 5, 0, 0, 30)  # off the minute: "next after start" means the same to both
MONTHS = ["JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"]
DAYS = ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"]


def _item(lo: int, hi: int, names: list[str] | None) -> st.SearchStrategy[str]:
    def value(v: int) -> st.SearchStrategy[str]:
        if names and lo <= v <= lo + len(names) - 1:
            name = names[v - lo]
            return st.sampled_from([str(v), name, name.lower(), name.capitalize()])
        return st.just(str(v))

    num = st.integers(lo, hi).flatmap(value)
    step = st.integers(1, hi - lo + 1).map(str)
    return st.one_of(
        st.just("*"),
        step.map(lambda s: f"*/{s}"),
        num,
        st.tuples(num, num).map(lambda ab: f"{ab[0]}-{ab[1]}"),
        st.tuples(num, num, step).map(lambda abs_: f"{abs_[0]}-{abs_[1]}/{abs_[2]}"),
    )


def _field(lo: int, hi: int, names: list[str] | None = None) -> st.SearchStrategy[str]:
    return st.lists(_item(lo, hi, names), min_size=1, max_size=3).map(",".join)


cron_expressions = st.one_of(
    st.tuples(_field(0, 59), _field(0, 23), _field(1, 31), _field(1, 12, MONTHS),
              st.one_of(_field(0, 7, DAYS), st.just("?"))).map(" ".join),
    st.sampled_from(["@hourly", "@daily", "@midnight", "@weekly", "@monthly", "@yearly", "@annually"]),
)


def croniter_firings(expr: str, n: int) -> list[datetime]:
    it = croniter(expr, START)
    return [it.get_next(datetime) for _ in range(n)]


def calendar_firings(specs: list[str], until: datetime) -> list[datetime]:
    out: set[datetime] = set()
    for spec in specs:
        cal = Calendar.parse(spec)
        assert cal is not None, spec
        out.update(cal.fires(START, until))
    return sorted(out)


def accepted(expr: str):  # type: ignore[no-untyped-def]
    assume(croniter.is_valid(expr))
    try:
        return parse_cron(expr)
    except ValueError as exc:
        # The generator writes nothing cron or systemd lacks: only an impossible date is refused.
        assert "never fires" in str(exc), exc
        assume(False)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
@given(cron_expressions)
def test_timer_fires_when_cron_does(expr: str) -> None:
    sched = accepted(expr)
    expected = croniter_firings(expr, 50)
    specs = sched.on_calendars()
    assert calendar_firings(specs, expected[-1] + timedelta(seconds=1))[:50] == expected, (expr, specs)
    # The cron line vigil writes means the same, and never starts a restricted day field with
    # `*` (Debian's cron would then AND the two day fields where croniter ORs them).
    line = sched.cron()
    assert croniter_firings(line, 50) == expected, (expr, line)
    _, _, dom, _, dow = line.split()
    if dom != "*" or dow != "*":
        assert not dom.startswith("*") or dom == "*"
        assert not dow.startswith("*") or dow == "*"


@pytest.mark.parametrize("expr,calendars", [
    ("0 3 * * MON", ["Mon *-*-* 03:00:00"]),
    ("1-5/2 * * * *", ["*-*-* *:01,03,05:00"]),
    ("0 3 1 * 1", ["*-*-01 03:00:00", "Mon *-*-* 03:00:00"]),  # every Monday and every 1st
    ("0 0 * JAN-MAR/2 FRI-MON", ["Mon,Fri..Sun *-01,03-* 00:00:00"]),
    ("0 0 * * 0-7", ["*-*-* 00:00:00"]),
])
def test_examples(expr: str, calendars: list[str]) -> None:
    assert parse_cron(expr).on_calendars() == calendars


def systemd_analyze_firings(specs: list[str], n: int) -> list[datetime]:
    proc = subprocess.run([systemd_analyze(), "calendar", f"--iterations={n}",
                           f"--base-time={START:%Y-%m-%d %H:%M:%S} UTC", *specs],
                          capture_output=True, text=True, env={**os.environ, "TZ": "UTC"}, check=True)
    times = re.findall(r"(?:Next elapse|Iter\. #\d+): \w+ (\d{4}-\d\d-\d\d \d\d:\d\d:\d\d)", proc.stdout)
    return sorted({datetime.strptime(t, "%Y-%m-%d %H:%M:%S") for t in times})[:n]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
@given(cron_expressions)
def test_systemd_agrees(expr: str) -> None:
    sched = accepted(expr)
    expected = croniter_firings(expr, 20)
    specs = sched.on_calendars()
    assert systemd_analyze_firings(specs, 20) == expected, (expr, specs)


@pytest.mark.parametrize("cal,cron", [("daily", "0 0 * * *"), ("*-*-* 19:00:00", "00 19 * * *"),
                                      ("*:0/15", "0-59/15 * * * *"), ("Mon *-*-* 03:00", "00 03 * * 1")])
def test_on_calendar_fires_like_cron(cal: str, cron: str) -> None:
    start = datetime(2026, 1, 5)
    spec = Calendar.parse(cal)
    assert spec is not None
    it = croniter(cron, start - timedelta(minutes=1))
    expected = [it.get_next(datetime) for _ in range(30)]
    assert list(spec.fires(start, expected[-1] + timedelta(seconds=1))) == expected
