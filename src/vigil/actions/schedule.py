"""Schedules: find every entry that runs a job, and write exactly one (SPEC §8).

The audit parses /etc/crontab, /etc/cron.d/*, user crontabs, /etc/anacrontab
and systemd timers (with the services they start) under a root directory, so
that a job scheduled three times — the founding incident — is found by a
machine. `install` writes one systemd service + timer (or one cron.d file)
plus a health check every 15 minutes, and refuses if the job is already
scheduled anywhere.
"""

from __future__ import annotations

import configparser
import os
import re
import shlex
import sys
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

from vigil.config.schema import Job
from vigil.errors import ConfigError

MARKER = "# Written by vigil schedule install"
CRON_D_NAME = re.compile(r"[A-Za-z0-9_-]+")  # Debian's cron ignores other names in /etc/cron.d
SYSTEMD_DIRS = ("etc/systemd/system", "lib/systemd/system", "usr/lib/systemd/system")
KEYWORDS = {"@hourly": "0 * * * *", "@daily": "0 0 * * *", "@midnight": "0 0 * * *", "@weekly": "0 0 * * 0",
            "@monthly": "0 0 1 * *", "@yearly": "0 0 1 1 *", "@annually": "0 0 1 1 *"}
_ENV_LINE = re.compile(r"^\s*[A-Za-z_][A-Za-z0-9_]*\s*=")


@dataclass
class Entry:
    path: str  # as on the real system: /etc/cron.d/backup
    line: int | None
    kind: str  # cron | anacron | systemd
    schedule: str
    command: str
    user: str | None = None
    cron: str | None = None  # 5-field equivalent, when there is one
    ignored: str | None = None  # why cron never runs it

    def describe(self) -> str:
        where = f"{self.path}:{self.line}" if self.line else self.path
        note = f" [IGNORED: {self.ignored}]" if self.ignored else ""
        return f"{where} ({self.kind} {self.schedule}{', user ' + self.user if self.user else ''}): {self.command}{note}"


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
        parts = line.split()
        if parts[0].startswith("@"):
            if parts[0] == "@reboot":
                sched, cron, rest = "@reboot", None, parts[1:]
            else:
                sched, cron, rest = parts[0], KEYWORDS.get(parts[0]), parts[1:]
        else:
            if len(parts) < 6:
                continue
            sched = cron = " ".join(parts[:5])
            rest = parts[5:]
        who = user
        if system:
            if not rest:
                continue
            who, rest = rest[0], rest[1:]
        out.append(Entry(shown, n, "cron", sched, " ".join(rest), who, cron, ignored))
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


def _on_calendar_to_cron(spec: str) -> str | None:
    """The common OnCalendar forms as cron; None when it has no exact cron twin."""
    s = spec.strip()
    simple = {"minutely": "* * * * *", "hourly": "0 * * * *", "daily": "0 0 * * *", "weekly": "0 0 * * 1",
              "monthly": "0 0 1 * *", "yearly": "0 0 1 1 *", "annually": "0 0 1 1 *"}
    if s in simple:
        return simple[s]
    m = re.fullmatch(r"(?:(\w{3}(?:[,.]+\w{3})*)\s+)?(?:\*-\*-\*\s+)?([\d*/,]+):([\d*/,]+)(?::00)?", s)
    if not m:
        return None
    dows, hour, minute = m.groups()
    days = {"Mon": 1, "Tue": 2, "Wed": 3, "Thu": 4, "Fri": 5, "Sat": 6, "Sun": 0}
    dow = "*"
    if dows:
        try:
            if ".." in dows:
                a, b = dows.split("..")
                dow = f"{days[a]}-{days[b]}"
            else:
                dow = ",".join(str(days[d]) for d in dows.split(","))
        except KeyError:
            return None

    def field(v: str) -> str:  # systemd "0/15" is cron "0-59/15"
        return re.sub(r"^(\d+)/(\d+)$", r"\1-59/\2", v)

    return f"{field(minute)} {field(hour)} * * {dow}"


def _systemd(root: Path) -> list[Entry]:
    out = []
    for d in SYSTEMD_DIRS:
        for timer in sorted((root / d).glob("*.timer")):
            cp = configparser.ConfigParser(strict=False, interpolation=None)
            try:
                cp.read_string(timer.read_text(errors="replace"))
            except (configparser.Error, OSError):
                continue
            if not cp.has_section("Timer"):
                continue
            cal = cp.get("Timer", "OnCalendar", fallback=None) or (
                "OnBootSec=" + cp.get("Timer", "OnBootSec", fallback="") if cp.has_option("Timer", "OnBootSec")
                else "OnUnitActiveSec=" + cp.get("Timer", "OnUnitActiveSec", fallback="?"))
            unit = cp.get("Timer", "Unit", fallback=timer.stem + ".service")
            command = ""
            for sd in SYSTEMD_DIRS:
                svc = root / sd / unit
                if svc.exists():
                    sp = configparser.ConfigParser(strict=False, interpolation=None)
                    try:
                        sp.read_string(svc.read_text(errors="replace"))
                        command = sp.get("Service", "ExecStart", fallback="").lstrip("-@+!:")
                    except (configparser.Error, OSError):
                        pass
                    break
            enabled = any((root / "etc/systemd/system" / w / timer.name).exists()
                          for w in ("timers.target.wants", "multi-user.target.wants"))
            out.append(Entry("/" + str(timer.relative_to(root)), None, "systemd",
                             cal + ("" if enabled else " (not enabled)"), command, None,
                             _on_calendar_to_cron(cal)))
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
        parts = raw.split()
        if len(parts) >= 4 and not raw.lstrip().startswith("#") and not _ENV_LINE.match(raw):
            entries.append(Entry("/etc/anacrontab", n, "anacron", parts[0], " ".join(parts[3:])))
    return entries + _systemd(root)


def runs_job(command: str, job: Job) -> bool:
    """Does this command run a backup of the job (vigil run, or the job's legacy script)?"""
    if any(legacy in command for legacy in job.legacy_commands):
        return True
    try:
        tokens = shlex.split(command)
    except ValueError:
        tokens = command.split()
    for i, tok in enumerate(tokens):
        base = os.path.basename(tok)
        if base == "vigil" or (base.startswith("python") and tokens[i + 1:i + 3] == ["-m", "vigil"]):
            rest = tokens[i + 1:]
            if "run" not in rest:
                return False
            after = rest[rest.index("run") + 1:]
            names = []
            for t in after:
                if t in (";", "&&", "||", "|") or t.startswith((">", "2>")):
                    break
                if not t.startswith("-"):
                    names.append(t)
            return not names or job.name in names
    return False


def audit(job: Job, root: Path) -> list[Entry]:
    return [e for e in scan(root) if runs_job(e.command, job)]


def same_minute(entries: list[Entry], days: int = 14) -> list[tuple[Entry, Entry, datetime]]:
    """Pairs of entries that fire in the same minute within the next `days` days."""
    from croniter import croniter

    start = datetime(2026, 1, 5, tzinfo=timezone.utc)
    fires: list[tuple[Entry, set[datetime]]] = []
    for e in entries:
        if e.cron and not e.ignored and croniter.is_valid(e.cron):
            it = croniter(e.cron, start - timedelta(minutes=1))
            times = set()
            while (t := it.get_next(datetime)) < start + timedelta(days=days):
                times.add(t)
            fires.append((e, times))
    clashes = []
    for i, (a, ta) in enumerate(fires):
        for b, tb in fires[i + 1:]:
            common = ta & tb
            if common:
                clashes.append((a, b, min(common)))
    return clashes


# --- install / remove ---------------------------------------------------------------------


_CRON_DOW = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"]


def cron_to_on_calendar(expr: str) -> str:
    """A 5-field cron expression as a systemd OnCalendar expression."""
    expr = KEYWORDS.get(expr, expr)
    parts = expr.split()
    if len(parts) != 5:
        raise ConfigError(f"schedule.cron: cannot convert {expr!r} to a systemd timer; use --cron")
    minute, hour, dom, month, dow = parts

    def conv(v: str, first: int) -> str:
        out = []
        for item in v.split(","):
            m = re.fullmatch(r"(\*|\d+)(?:-(\d+))?(?:/(\d+))?", item)
            if not m:
                raise ConfigError(f"schedule.cron: cannot convert {expr!r} to a systemd timer; use --cron")
            a, b, step = m.groups()
            if a == "*":
                out.append(f"{first:02d}/{step}" if step else "*")
            elif step:
                if b:
                    raise ConfigError(f"schedule.cron: cannot convert {expr!r} to a systemd timer; use --cron")
                out.append(f"{int(a):02d}/{step}")
            else:
                out.append(f"{int(a):02d}..{int(b):02d}" if b else f"{int(a):02d}")
        return ",".join(out)

    days = ""
    if dow != "*":
        names = []
        for item in dow.split(","):
            if "-" in item:
                a, b = item.split("-")
                names.append(f"{_CRON_DOW[int(a)]}..{_CRON_DOW[int(b)]}")
            else:
                names.append(_CRON_DOW[int(item)])
        days = ",".join(names) + " "
    return f"{days}*-{conv(month, 1)}-{conv(dom, 1)} {conv(hour, 0)}:{conv(minute, 0)}:00"


def vigil_command() -> str:
    exe = Path(sys.argv[0])
    found = exe if exe.name == "vigil" and exe.is_absolute() else None
    return str(found or "/usr/local/bin/vigil")


def planned_files(job: Job, systemd: bool, config: str) -> dict[str, str]:
    """Paths (relative to root) and contents that `install` writes."""
    if not job.schedule.cron:
        raise ConfigError(f"{job.config_path}: schedule.cron: required to install a schedule")
    vigil = vigil_command()
    run = f"{vigil} --config {config} run {job.name}"
    health = f"{vigil} --config {config} health --notify {job.name}"
    header = f"{MARKER} for job {job.name}; remove with `vigil schedule remove {job.name}`.\n"
    if not systemd:
        return {f"etc/cron.d/vigil-{job.name.replace('.', '_')}": (
            header + "SHELL=/bin/sh\nPATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin\n"
            f"{job.schedule.cron} root nice -n 10 ionice -c 3 {run}\n"
            f"*/15 * * * * root {health} > /dev/null\n")}
    unit = f"vigil-{job.name}"
    timeout = int(job.health.max_runtime.total_seconds())
    return {
        f"etc/systemd/system/{unit}.service": (
            f"{header}[Unit]\nDescription=vigil backup of {job.name}\nOnFailure={unit}-health.service\n"
            "After=network-online.target\nWants=network-online.target\n\n"
            f"[Service]\nType=oneshot\nExecStart={run}\nNice=10\nIOSchedulingClass=idle\n"
            f"CPUSchedulingPolicy=batch\nTimeoutStartSec={timeout}\n"),
        f"etc/systemd/system/{unit}.timer": (
            f"{header}[Unit]\nDescription=vigil backup of {job.name}: schedule\n\n"
            f"[Timer]\nOnCalendar={cron_to_on_calendar(job.schedule.cron)}\nPersistent=true\n"
            f"RandomizedDelaySec=60\nUnit={unit}.service\n\n[Install]\nWantedBy=timers.target\n"),
        f"etc/systemd/system/{unit}-health.service": (
            f"{header}[Unit]\nDescription=vigil health check of {job.name}\n\n"
            f"[Service]\nType=oneshot\nExecStart={health}\nSuccessExitStatus=1 2 3\n"),
        f"etc/systemd/system/{unit}-health.timer": (
            f"{header}[Unit]\nDescription=vigil health check of {job.name}: every 15 minutes\n\n"
            f"[Timer]\nOnCalendar=*:0/15\nPersistent=true\nUnit={unit}-health.service\n\n"
            "[Install]\nWantedBy=timers.target\n"),
    }


def installed_files(job: Job, root: Path) -> list[Path]:
    """Files under root that `install` wrote for this job (they carry the marker)."""
    candidates = [root / f"etc/cron.d/vigil-{job.name.replace('.', '_')}"]
    for suffix in (".service", ".timer", "-health.service", "-health.timer"):
        candidates.append(root / f"etc/systemd/system/vigil-{job.name}{suffix}")
    return [p for p in candidates if p.exists() and p.read_text(errors="replace").startswith(
        f"{MARKER} for job {job.name};")]
