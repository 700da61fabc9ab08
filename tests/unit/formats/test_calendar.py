"""Cron expressions as systemd timers, and commands quoted for cron and systemd.

croniter is the reference for what a cron expression means (health uses it
too); every expression `[schedule]` accepts must become OnCalendar= values that
fire at exactly the same minutes, and a cron line that Debian's cron reads the
same way.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from croniter import croniter
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from vigil.actions.schedule import cron_command, cron_word, shell_words, systemd_word, systemd_words
from vigil.formats.calendar import Calendar, parse_cron

START = datetime(2026, 1, 5, 0, 0, 30)  # off the minute: "next after start" means the same to both
MONTHS = ["JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"]
DAYS = ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"]
SYSTEMD_ANALYZE = shutil.which("systemd-analyze")


def _systemd_analyze() -> str:
    """scripts/install-system-deps.sh installs systemd: its absence is a broken setup, not a pass."""
    assert SYSTEMD_ANALYZE, "systemd-analyze is missing: run scripts/install-system-deps.sh"
    return SYSTEMD_ANALYZE


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
    proc = subprocess.run([_systemd_analyze(), "calendar", f"--iterations={n}",
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


# --- quoting --------------------------------------------------------------------------------

NASTY = ["/srv/my jobs/app.toml", "/srv/50% off/app.toml", "/srv/$HOME/x", "/srv/cfg x;touch $HOME/PWNED;#",
         "/srv/it's \"q\"", "/srv/back\\slash", "/srv/back\\%pct", "/srv/%%d %n", "/srv/tab\there", "/srv/`id`",
         "/srv/${PATH}", "/srv/a'b\\\"c", "/srv/ spaced ", "/srv/%", "/srv/\\"]
words = st.text(st.characters(blacklist_categories=["Cs"], blacklist_characters="\0\n\r"), max_size=30)


def cron_sh(line: str) -> str:
    """What cron hands to `sh -c` (crontab(5)): an unescaped % ends the command, \\% is a %."""
    out, i = "", 0
    while i < len(line):
        if line[i] == "\\" and i + 1 < len(line):
            out += "%" if line[i + 1] == "%" else line[i:i + 2]
            i += 2
            continue
        if line[i] == "%":
            break
        out += line[i]
        i += 1
    return out


@pytest.fixture(scope="module")
def recorder(tmp_path_factory) -> tuple[Path, Path]:
    d = tmp_path_factory.mktemp("rec")
    fake = d / "fake vigil"
    fake.write_text("#!/bin/sh\nfor a in \"$@\"; do printf '%s\\0' \"$a\"; done > \"$REC\"\n")
    fake.chmod(0o755)
    return fake, d / "argv"


def run_cron_line(words_: list[str], recorder: tuple[Path, Path], home: Path) -> list[str]:
    fake, rec = recorder
    line = " ".join(cron_word(w) for w in [str(fake), *words_])
    subprocess.run(["sh", "-c", cron_sh(line)], check=True, cwd=home,
                   env={"PATH": "/usr/bin:/bin", "HOME": str(home), "REC": str(rec)})
    return [w.decode() for w in rec.read_bytes().split(b"\0")[:-1]]


@pytest.mark.parametrize("path", NASTY)
def test_cron_word_is_one_argument(path: str, recorder, tmp_path: Path) -> None:
    argv = ["--config", path, "run", "app"]
    assert run_cron_line(argv, recorder, tmp_path) == argv
    assert not (tmp_path / "PWNED").exists()


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(words, min_size=1, max_size=3))
def test_cron_words_any_text(recorder, tmp_path: Path, ws: list[str]) -> None:
    assert run_cron_line(ws, recorder, tmp_path) == ws


def test_cron_command_matches_crons_rule() -> None:
    assert cron_command(r"echo a\%b\\%c") == "echo a%b\\\\"
    assert cron_command("date +%s") == "date +"
    assert shell_words(cron_command(cron_word("/x/50%") + " run")) == ["/x/50%", "run"]


def systemd_reading(value: str) -> list[str]:
    """systemd.service(5), "Command lines": split on whitespace, quotes group, C escapes,
    then %% is % (specifiers) and $$ is $ (variables)."""
    escapes = {"n": "\n", "t": "\t", "\\": "\\", '"': '"', "'": "'", "s": " "}
    out, cur, quote, started, i = [], "", None, False, 0
    while i < len(value):
        c = value[i]
        if c == "\\":
            nxt = value[i + 1]
            if nxt == "x":
                cur += chr(int(value[i + 2:i + 4], 16))
                i += 4
                continue
            cur += escapes[nxt]
            i, started = i + 2, True
            continue
        if quote and c == quote:
            quote = None
        elif not quote and c in "\"'":
            quote, started = c, True
        elif not quote and c == " ":
            if started:
                out.append(cur)
            cur, started = "", False
        else:
            cur, started = cur + c, True
        i += 1
    if started:
        out.append(cur)
    return [w.replace("%%", "%").replace("$$", "$") for w in out]


@pytest.mark.parametrize("path", NASTY)
def test_systemd_word_is_one_argument(path: str) -> None:
    argv = ["/opt/vigil/bin/vigil", "--config", path, "run", "app"]
    line = " ".join(systemd_word(w) for w in argv)
    assert systemd_reading(line) == argv
    assert systemd_words(line) == argv  # what doctor reads back
    bare = re.sub(r"%%|\$\$", "", line)
    assert "%" not in bare and "$" not in bare  # no specifier or variable left for systemd to expand


@given(st.lists(words, min_size=1, max_size=3))
def test_systemd_words_any_text(ws: list[str]) -> None:
    argv = ["/opt/vigil/bin/vigil", *ws]  # an ExecStart= always starts with the absolute executable
    line = " ".join(systemd_word(w) for w in argv)
    assert systemd_words(line) == argv
    assert systemd_reading(line) == argv


@pytest.mark.parametrize("path", NASTY)
def test_systemd_analyze_verify_accepts(path: str, recorder, tmp_path: Path) -> None:
    fake, _ = recorder
    unit = tmp_path / "t.service"
    unit.write_text("[Service]\nType=oneshot\nExecStart="
                    + " ".join(systemd_word(w) for w in [str(fake), "--config", path, "run", "app"]) + "\n")
    proc = subprocess.run([_systemd_analyze(), "verify", str(unit)], capture_output=True, text=True,
                          env={**os.environ, "SYSTEMD_UNIT_PATH": f"{tmp_path}:", "HOME": str(tmp_path)})
    assert proc.returncode == 0, proc.stderr
    assert not (tmp_path / "PWNED").exists()
