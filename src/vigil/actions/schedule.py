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

import os
import re
import shlex
import shutil
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

from vigil.config.schema import Job
from vigil.errors import ConfigError
from vigil.formats.calendar import KEYWORDS, Calendar, parse_cron, verify_every_cron

MARKER = "# Written by vigil schedule install"
CRON_D_NAME = re.compile(r"[A-Za-z0-9_-]+")  # Debian's cron ignores other names in /etc/cron.d
SYSTEMD_DIRS = ("etc/systemd/system", "lib/systemd/system", "usr/lib/systemd/system")
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
        user = f", user {self.user}" if self.user else ""
        return f"{where} ({self.kind} {self.schedule}{user}): {self.command}{note}"

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


@dataclass
class Installation:
    """What `install` found or wrote: nothing is written while the job is scheduled anywhere."""

    existing: list[Entry]
    written: list[Path] = field(default_factory=list)
    timers: list[str] = field(default_factory=list)  # systemd units to enable; none for cron


def install(job: Job, root: Path, systemd: bool, config: str) -> Installation:
    """Schedule the job exactly once: write its files under root, unless a schedule already runs it."""
    existing = audit(job, root) + audit_verify(job, root)
    if existing:
        return Installation(existing)
    done = Installation([])
    for rel, text in planned_files(job, systemd, config).items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        path.chmod(0o644)
        done.written.append(path)
    if systemd:
        done.timers = [f"vigil-{job.name}.timer", f"vigil-{job.name}-health.timer"]
        done.timers += [f"vigil-{job.name}-verify.timer"] if job.schedule.verify_every else []
    return done


def remove(job: Job, root: Path) -> list[Path]:
    """Delete what `install` wrote for the job (and nothing else); the files removed."""
    files = installed_files(job, root)
    for f in files:
        f.unlink()
    return files
