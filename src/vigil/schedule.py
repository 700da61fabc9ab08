"""Schedules: find every entry that runs a job, and write exactly one (SPEC §8).

The audit parses /etc/crontab, /etc/cron.d/*, user crontabs, /etc/anacrontab
and systemd timers (with the services they start) under a root directory, so
that a job scheduled three times — the founding incident — is found by a
machine. `install` writes one systemd service + timer (or one cron.d file)
plus a health check every 15 minutes, and refuses if the job is already
scheduled anywhere.

Commands are written with the absolute path of the running vigil and of the
config, each quoted for the file it goes in: systemd's ExecStart= and cron's
`sh -c` line (with cron's own `%` rule) quote differently. The audit reads
them back with the same rules.
"""

from __future__ import annotations

import calendar
import os
import re
import shlex
import shutil
import sys
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Callable, Iterator

from vigil.config import Job
from vigil.errors import ConfigError

MARKER = "# Written by vigil schedule install"
CRON_D_NAME = re.compile(r"[A-Za-z0-9_-]+")  # Debian's cron ignores other names in /etc/cron.d
SYSTEMD_DIRS = ("etc/systemd/system", "lib/systemd/system", "usr/lib/systemd/system")
KEYWORDS = {"@hourly": "0 * * * *", "@daily": "0 0 * * *", "@midnight": "0 0 * * *", "@weekly": "0 0 * * 0",
            "@monthly": "0 0 1 * *", "@yearly": "0 0 1 1 *", "@annually": "0 0 1 1 *"}
_ENV_LINE = re.compile(r"^\s*[A-Za-z_][A-Za-z0-9_]*\s*=")
_SHELL_OPERATORS = (";", "&&", "||", "|", "&")


@dataclass
class Entry:
    path: str  # as on the real system: /etc/cron.d/backup
    line: int | None
    kind: str  # cron | anacron | systemd
    schedule: str
    command: str
    user: str | None = None
    cron: str | None = None  # the 5-field expression of a cron entry
    ignored: str | None = None  # why cron never runs it
    argvs: list[list[str]] = field(default_factory=list)  # the command(s) as the program receives them
    calendars: list[str] = field(default_factory=list)  # every OnCalendar= of a timer

    def describe(self) -> str:
        where = f"{self.path}:{self.line}" if self.line else self.path
        note = f" [IGNORED: {self.ignored}]" if self.ignored else ""
        return f"{where} ({self.kind} {self.schedule}{', user ' + self.user if self.user else ''}): {self.command}{note}"

    def firings(self, start: datetime, end: datetime) -> set[datetime] | None:
        """Minutes in [start, end) at which it fires; None when that cannot be known."""
        if self.ignored:
            return None
        if self.kind == "cron" and self.cron:
            from croniter import croniter

            if not croniter.is_valid(self.cron):
                return None
            it = croniter(self.cron, start - timedelta(minutes=1))
            times = set()
            while (t := it.get_next(datetime)) < end:
                times.add(t)
            return times
        if self.kind == "systemd" and self.calendars:
            specs = [Calendar.parse(c) for c in self.calendars]
            if any(s is None for s in specs):
                return None
            return {t for s in specs if s for t in s.fires(start, end)}
        return None


# --- quoting: what cron and systemd hand to the program ------------------------------------


def cron_word(word: str) -> str:
    """One argument for a cron command line: `sh -c` quoting, then cron's `%` rule.

    cron turns an unescaped `%` into the end of the command (the rest is stdin)
    and `\\%` into `%`. Each `%` is written outside the shell quotes as `\\%`,
    so that it never follows a backslash of the quoted text (which would make
    cron read `\\\\%` as an escaped backslash and a bare `%`).
    """
    if "\n" in word or "\r" in word or "\0" in word:
        raise ConfigError(f"{word!r}: a path with a newline cannot be written into a cron line")
    return "\\%".join(shlex.quote(piece) for piece in word.split("%"))


def cron_command(line_rest: str) -> str:
    """The shell command cron runs for this text: up to the first unescaped `%`, with `\\%` as `%`."""
    out: list[str] = []
    escaped = False
    for ch in line_rest:
        if escaped:
            if ch == "%":
                out[-1] = "%"
            else:
                out.append(ch)
            escaped = False
            continue
        if ch == "%":
            break
        out.append(ch)
        escaped = ch == "\\"
    return "".join(out)


def shell_words(command: str) -> list[str]:
    """A shell command line as words (operators kept as words of their own)."""
    try:
        lexer = shlex.shlex(command, posix=True, punctuation_chars=";&|")
        lexer.whitespace_split = True
        return list(lexer)
    except ValueError:
        return command.split()


_SYSTEMD_PLAIN = re.compile(r"[A-Za-z0-9_@+=:,./-]+")
_C_UNESCAPES = {"a": "\a", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t", "v": "\v", "s": " "}


def systemd_word(word: str) -> str:
    """One argument of ExecStart=: double quotes, C escapes, `%%` (specifiers) and `$$` (variables)."""
    if _SYSTEMD_PLAIN.fullmatch(word):
        return word
    out = []
    for ch in word:
        if ch in '\\"':
            out.append("\\" + ch)
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append(f"\\x{ord(ch):02x}")
        elif ch in "%$":
            out.append(ch + ch)
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'


def systemd_words(value: str) -> list[str]:
    """ExecStart='s value as the argv systemd starts: quotes, C escapes, `%%` and `$$` undone."""
    value = re.sub(r"^[-@+!:]+", "", value.strip())
    words: list[str] = []
    cur: list[str] = []
    quote: str | None = None
    in_word = False
    i = 0
    while i < len(value):
        ch = value[i]
        if ch == "\\" and i + 1 < len(value):
            nxt = value[i + 1]
            if nxt == "x" and re.fullmatch(r"[0-9a-fA-F]{2}", value[i + 2:i + 4]):
                cur.append(chr(int(value[i + 2:i + 4], 16)))
                i += 4
            else:
                cur.append(_C_UNESCAPES.get(nxt, nxt))
                i += 2
            in_word = True
            continue
        if quote:
            if ch == quote:
                quote = None
            else:
                cur.append(ch)
        elif ch in "\"'":
            quote, in_word = ch, True
        elif ch in " \t\n\r":  # systemd's whitespace, not Unicode's
            if in_word:
                words.append("".join(cur))
                cur, in_word = [], False
        else:
            cur.append(ch)
            in_word = True
        i += 1
    if in_word:
        words.append("".join(cur))
    return [w.replace("%%", "%").replace("$$", "$") for w in words]


# --- reading the schedules of a machine -----------------------------------------------------


def _read(path: Path) -> list[str]:
    try:
        return path.read_text(errors="replace").splitlines()
    except OSError:
        return []


def _cron_lines(path: Path, shown: str, system: bool, user: str | None, ignored: str | None) -> list[Entry]:
    out = []
    for n, raw in enumerate(_read(path), 1):
        line = raw.strip()
        if not line or line.startswith("#") or _ENV_LINE.match(line):
            continue
        if line.startswith("@"):
            sched, _, rest = line.partition(" ")
            cron = None if sched == "@reboot" else KEYWORDS.get(sched)
        else:
            parts = line.split(None, 5)
            if len(parts) < 6:
                continue
            sched = cron = " ".join(parts[:5])
            rest = parts[5]
        rest = rest.strip()
        who = user
        if system:
            who, _, rest = rest.partition(" ")
            rest = rest.strip()
            if not rest:
                continue
        argv = shell_words(cron_command(rest))
        out.append(Entry(shown, n, "cron", sched, rest, who, cron, ignored, [argv]))
    return out


def _cron_d_ignored(path: Path) -> str | None:
    if not CRON_D_NAME.fullmatch(path.name):
        return "cron ignores files in /etc/cron.d whose names have characters other than letters, digits, _ and -"
    try:
        st = path.stat()
    except OSError:
        return None
    if st.st_uid != 0 and os.geteuid() == 0:
        return "not owned by root"
    if st.st_mode & 0o022:
        return "writable by group or others"
    return None


def unit_values(text: str, section: str, key: str) -> list[str]:
    """Every value of a key in a unit file's section, as systemd reads them:
    continuation lines joined, comments skipped, an empty assignment resets the list."""
    logical: list[str] = []
    buf = ""
    for raw in text.splitlines():
        s = raw.strip()
        if not buf and (not s or s[0] in "#;"):
            continue
        if s.endswith("\\"):
            buf += s[:-1] + " "
            continue
        logical.append(buf + s)
        buf = ""
    if buf:
        logical.append(buf)
    values: list[str] = []
    current = None
    for line in logical:
        if line.startswith("[") and line.endswith("]"):
            current = line[1:-1].strip()
        elif current == section and "=" in line:
            k, v = line.split("=", 1)
            if k.strip() == key:
                v = v.strip()
                values = values + [v] if v else []
    return values


def _systemd(root: Path) -> list[Entry]:
    out = []
    for d in SYSTEMD_DIRS:
        for timer in sorted((root / d).glob("*.timer")):
            try:
                text = timer.read_text(errors="replace")
            except OSError:
                continue
            if not re.search(r"^\s*\[Timer\]\s*$", text, re.M):
                continue
            cals = unit_values(text, "Timer", "OnCalendar")
            if cals:
                sched = "; ".join(cals)
            else:
                boot = unit_values(text, "Timer", "OnBootSec")
                active = unit_values(text, "Timer", "OnUnitActiveSec")
                sched = f"OnBootSec={boot[-1]}" if boot else f"OnUnitActiveSec={active[-1] if active else '?'}"
            units = unit_values(text, "Timer", "Unit")
            unit = units[-1] if units else timer.stem + ".service"
            execs: list[str] = []
            for sd in SYSTEMD_DIRS:
                svc = root / sd / unit
                if svc.exists():
                    execs = unit_values(svc.read_text(errors="replace"), "Service", "ExecStart")
                    break
            enabled = any((root / "etc/systemd/system" / w / timer.name).exists()
                          for w in ("timers.target.wants", "multi-user.target.wants"))
            out.append(Entry("/" + str(timer.relative_to(root)), None, "systemd",
                             sched + ("" if enabled else " (not enabled)"),
                             " ; ".join(re.sub(r"^[-@+!:]+", "", e) for e in execs), None, None, None,
                             [systemd_words(e) for e in execs], cals))
    return out


def scan(root: Path) -> list[Entry]:
    """Every scheduled command under root (cron, anacron, systemd timers)."""
    entries = _cron_lines(root / "etc/crontab", "/etc/crontab", True, None, None)
    for f in sorted((root / "etc/cron.d").glob("*")):
        if f.is_file():
            entries += _cron_lines(f, f"/etc/cron.d/{f.name}", True, None, _cron_d_ignored(f))
    for spool in ("var/spool/cron/crontabs", "var/spool/cron"):
        for f in sorted((root / spool).glob("*")):
            if f.is_file():
                entries += _cron_lines(f, f"/{spool}/{f.name}", False, f.name, None)
    for n, raw in enumerate(_read(root / "etc/anacrontab"), 1):
        parts = raw.split(None, 3)
        if len(parts) >= 4 and not raw.lstrip().startswith("#") and not _ENV_LINE.match(raw):
            entries.append(Entry("/etc/anacrontab", n, "anacron", parts[0], parts[3],
                                 argvs=[shell_words(parts[3])]))
    return entries + _systemd(root)


@dataclass
class VigilCall:
    """One vigil invocation found in a scheduled command."""

    exe: str  # the word that starts vigil: a path, `vigil`, or the python of `python -m vigil`
    action: str | None
    names: list[str]
    config: str | None


_VALUE_OPTIONS = ("--config", "--log-format")


def vigil_calls(argv: list[str]) -> list[VigilCall]:
    """The vigil invocations in a command's words (`cd / && vigil -q run api`, `python3 -m vigil ...`)."""
    calls = []
    for i, tok in enumerate(argv):
        base = os.path.basename(tok)
        if base == "vigil":
            start = i + 1
        elif base.startswith("python") and argv[i + 1:i + 3] == ["-m", "vigil"]:
            start = i + 3
        else:
            continue
        config, action, names = None, None, []
        rest = iter(argv[start:])
        for t in rest:
            if t in _SHELL_OPERATORS or t.startswith((">", "2>", "<")):
                break
            if action is None:
                if t in _VALUE_OPTIONS:
                    value = next(rest, None)
                    config = value if t == "--config" else config
                elif t.startswith("--config="):
                    config = t.split("=", 1)[1]
                elif not t.startswith("-"):
                    action = t
            elif not t.startswith("-"):
                names.append(t)
        if action == "verify":
            names = names[:1]  # verify [JOB] [BACKUP_ID]
        calls.append(VigilCall(tok, action, names, config))
    return calls


def located(root: Path, path: str) -> Path | None:
    """A path a schedule names, looked up in the audited tree, else on this machine; None if missing."""
    if not os.path.isabs(path):
        return None
    for p in (root / path.lstrip("/"), Path(path)):
        if p.exists():
            return p
    return None


def _is_jobs_config(config: str | None, job: Job, root: Path) -> bool:
    """Does `--config` name this job's file or its directory? Unknown or missing paths count as yes,
    so that a schedule whose config went away is still reported for the job."""
    if not config or job.config_path is None:
        return True
    found = located(root, config)
    if found is None:
        return True
    mine = job.config_path.resolve()
    there = found.resolve()
    return there == mine or (there.is_dir() and mine.parent == there)


def _call_matches(call: VigilCall, job: Job, action: str, root: Path) -> bool:
    return call.action == action and (not call.names or job.name in call.names) and \
        _is_jobs_config(call.config, job, root)


def runs_job(command: str, job: Job, root: Path = Path("/")) -> bool:
    """Does this shell command run a backup of the job (vigil run, or the job's legacy script)?"""
    if any(legacy in command for legacy in job.legacy_commands):
        return True
    return any(_call_matches(c, job, "run", root) for c in vigil_calls(shell_words(command)))


def entry_calls(entry: Entry, job: Job, action: str, root: Path) -> list[VigilCall]:
    return [c for argv in entry.argvs for c in vigil_calls(argv) if _call_matches(c, job, action, root)]


def audit(job: Job, root: Path) -> list[Entry]:
    """Every entry that runs a backup of the job."""
    return [e for e in scan(root) if any(legacy in e.command for legacy in job.legacy_commands)
            or entry_calls(e, job, "run", root)]


def audit_verify(job: Job, root: Path) -> list[Entry]:
    """Every entry that runs `vigil verify` of the job."""
    return [e for e in scan(root) if entry_calls(e, job, "verify", root)]


def same_minute(entries: list[Entry], days: int = 14) -> list[tuple[Entry, Entry, datetime]]:
    """Pairs of entries that fire in the same minute within the next `days` days."""
    start = datetime(2026, 1, 5)
    end = start + timedelta(days=days)
    fires = [(e, times) for e in entries if (times := e.firings(start, end)) is not None]
    clashes = []
    for i, (a, ta) in enumerate(fires):
        for b, tb in fires[i + 1:]:
            common = ta & tb
            if common:
                clashes.append((a, b, min(common)))
    return clashes


# --- cron expressions and their systemd calendar twins --------------------------------------

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
    def parse(cls, spec: str) -> "Calendar | None":
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


def cron_to_on_calendar(expr: str) -> list[str]:
    """A cron expression as the OnCalendar= values of one timer."""
    try:
        return parse_cron(expr).on_calendars()
    except ValueError as exc:
        raise ConfigError(f"schedule.{exc}") from None


# --- install / remove ---------------------------------------------------------------------


def vigil_argv() -> list[str]:
    """How a schedule starts this same vigil: the running executable's absolute path
    (a venv's vigil, not whatever `vigil` is first on cron's PATH)."""
    arg0 = sys.argv[0] if sys.argv else ""
    if os.path.basename(arg0) == "vigil":
        found = arg0 if os.sep in arg0 else shutil.which(arg0)
        if found and os.path.isfile(found):
            return [os.path.abspath(found)]
    beside = shutil.which("vigil", path=os.path.dirname(sys.executable))
    if beside:
        return [os.path.abspath(beside)]
    return [os.path.abspath(sys.executable), "-m", "vigil"]


def verify_cron(job: Job) -> str | None:
    """The cron expression of the `verify --deep` schedule: every `verify_every`, half a day
    and half an hour away from the backup's first firing so that the two rarely meet."""
    every = job.schedule.verify_every
    if every is None:
        return None
    backup = parse_cron(job.schedule.cron) if job.schedule.cron else None
    minute = (backup.minutes[0] + 30) % 60 if backup else 30
    hour = (backup.hours[0] + 12) % 24 if backup else 4
    return verify_every_cron(every, minute, hour)


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


def _command(words: list[str], quote: Callable[[str], str]) -> str:
    return " ".join(quote(w) for w in words)


def planned_files(job: Job, systemd: bool, config: str) -> dict[str, str]:
    """Paths (relative to root) and contents that `install` writes."""
    if not job.schedule.cron:
        raise ConfigError(f"{job.config_path}: schedule.cron: required to install a schedule")
    vigil = vigil_argv()
    base = [*vigil, "--config", config]
    run = [*base, "run", job.name]
    health = [*base, "health", "--notify", job.name]
    verify = [*base, "verify", "--deep", job.name]
    try:
        sched = parse_cron(job.schedule.cron)
        vcron = verify_cron(job)
    except ValueError as exc:
        raise ConfigError(f"{job.config_path}: schedule.{exc}") from None
    header = f"{MARKER} for job {job.name}; remove with `vigil schedule remove {job.name}`.\n"
    if not systemd:
        lines = [f"{sched.cron()} root nice -n 10 ionice -c 3 {_command(run, cron_word)}",
                 f"*/15 * * * * root {_command(health, cron_word)} > /dev/null"]
        if vcron:
            lines.append(f"{parse_cron(vcron).cron()} root nice -n 10 ionice -c 3 {_command(verify, cron_word)}")
        return {f"etc/cron.d/vigil-{job.name.replace('.', '_')}": (
            header + "SHELL=/bin/sh\nPATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin\n"
            + "".join(line + "\n" for line in lines))}
    unit = f"vigil-{job.name}"
    timeout = int(job.health.max_runtime.total_seconds())
    files = {
        f"etc/systemd/system/{unit}.service": _service(header, f"vigil backup of {job.name}", run, timeout,
                                                       f"OnFailure={unit}-health.service\n"),
        f"etc/systemd/system/{unit}.timer": _timer(header, f"vigil backup of {job.name}: schedule",
                                                   sched.on_calendars(), f"{unit}.service"),
        f"etc/systemd/system/{unit}-health.service": (
            f"{header}[Unit]\nDescription=vigil health check of {job.name}\n\n"
            f"[Service]\nType=oneshot\nExecStart={_command(health, systemd_word)}\nSuccessExitStatus=1 2 3\n"),
        f"etc/systemd/system/{unit}-health.timer": (
            f"{header}[Unit]\nDescription=vigil health check of {job.name}: every 15 minutes\n\n"
            f"[Timer]\nOnCalendar=*:0/15\nPersistent=true\nUnit={unit}-health.service\n\n"
            "[Install]\nWantedBy=timers.target\n"),
    }
    if vcron:
        files[f"etc/systemd/system/{unit}-verify.service"] = _service(
            header, f"vigil deep verify of {job.name}", verify, timeout, f"OnFailure={unit}-health.service\n")
        files[f"etc/systemd/system/{unit}-verify.timer"] = _timer(
            header, f"vigil deep verify of {job.name}: schedule", parse_cron(vcron).on_calendars(),
            f"{unit}-verify.service")
    return files


def _service(header: str, description: str, argv: list[str], timeout: int, extra_unit: str) -> str:
    return (f"{header}[Unit]\nDescription={description}\n{extra_unit}"
            "After=network-online.target\nWants=network-online.target\n\n"
            f"[Service]\nType=oneshot\nExecStart={_command(argv, systemd_word)}\nNice=10\n"
            f"IOSchedulingClass=idle\nCPUSchedulingPolicy=batch\nTimeoutStartSec={timeout}\n")


def _timer(header: str, description: str, calendars: list[str], unit: str) -> str:
    return (f"{header}[Unit]\nDescription={description}\n\n[Timer]\n"
            + "".join(f"OnCalendar={c}\n" for c in calendars)
            + f"Persistent=true\nRandomizedDelaySec=60\nUnit={unit}\n\n[Install]\nWantedBy=timers.target\n")


def installed_files(job: Job, root: Path) -> list[Path]:
    """Files under root that `install` wrote for this job (they carry the marker)."""
    candidates = [root / f"etc/cron.d/vigil-{job.name.replace('.', '_')}"]
    for suffix in (".service", ".timer", "-health.service", "-health.timer", "-verify.service", "-verify.timer"):
        candidates.append(root / f"etc/systemd/system/vigil-{job.name}{suffix}")
    return [p for p in candidates if p.exists() and p.read_text(errors="replace").startswith(
        f"{MARKER} for job {job.name};")]
