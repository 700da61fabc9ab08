"""`vigil doctor`: audit a job's config, permissions, tools, destinations and schedules.

Each check yields OK, WARNING or PROBLEM with a suggested fix. Checks are
small functions over the job; the schedule audit reads a root directory
(`--root` in tests) instead of `/`.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from vigil.actions.schedule import Entry, VigilCall, audit, audit_verify, entry_calls, located, same_minute
from vigil.config.schema import Job, LocalDestination, MysqlSource, PostgresSource, S3Destination, SqliteSource
from vigil.destinations.base import make_destination, space_needed
from vigil.errors import ConfigError, VigilError
from vigil.sources.base import OK, PROBLEM, WARNING, SourceContext, make_source


@dataclass
class Finding:
    level: str
    check: str
    message: str
    fix: str = ""


# Header names that usually carry a credential (Authorization, X-Api-Key, X-Auth-Token, …).
_SECRET_HEADER = re.compile(r"auth|token|key|secret|pass|cookie", re.I)


def _literal_secrets(job: Job) -> Iterator[tuple[str, str, str]]:
    """(owner, what, fix) for every secret written into the job file itself."""
    from vigil.sources.db.postgres import parse_dsn

    for kind, item in [("source", s) for s in job.source] + [("notify", n) for n in job.notify]:
        if getattr(item, "password", None):
            yield f"{kind} {item.name}", "literal password", "use password_env or password_file"
        dsn = getattr(item, "dsn", None)
        if isinstance(dsn, str) and parse_dsn(dsn)[1] is not None:
            yield f"{kind} {item.name}", "password in dsn", "drop it from dsn; use password_env or password_file"
        for header in getattr(item, "headers", {}):
            if _SECRET_HEADER.search(header):
                yield f"{kind} {item.name}", f"header {header} holds a credential", ""


def _secrets(job: Job) -> Iterator[Finding]:
    mode = job.config_path.stat().st_mode if job.config_path else 0
    loose = bool(mode & 0o077)
    found = False
    for owner, what, fix in _literal_secrets(job):
        if not fix and not loose:
            continue  # no other place for it: a file only its owner reads is the fix
        found = True
        yield Finding(PROBLEM if loose else WARNING, "secrets",
                      f"{owner}: {what} in {job.config_path}"
                      + (f" (mode {stat.S_IMODE(mode):04o}: readable by group or others)" if loose else ""),
                      "; ".join(f for f in (fix, f"chmod 600 {job.config_path}" if loose else "") if f))
    items = [(f"source {s.name}", s) for s in job.source] + [(f"notify {n.name}", n) for n in job.notify]
    files = [(owner, "password_file", getattr(item, "password_file", None)) for owner, item in items]
    if job.encryption is not None:
        files += [("encryption", key, getattr(job.encryption, key)) for key in ("passphrase_file", "identity_file")]
    for owner, key, path in files:
        if path and path.exists() and path.stat().st_mode & 0o077:
            found = True
            yield Finding(PROBLEM, "secrets", f"{owner}: {key} {path} is readable by group or others",
                          f"chmod 600 {path}")
    if job.env_file is not None and job.env_file.exists() and job.env_file.stat().st_mode & 0o077:
        # A warning: an app's .env is often 0640 so that the web server's group can read it.
        found = True
        yield Finding(WARNING, "secrets", f"env_file {job.env_file} is readable by group or others "
                      f"(mode {stat.S_IMODE(job.env_file.stat().st_mode):04o})",
                      f"chmod 600 {job.env_file} unless another user must read it")
    if not found:
        yield Finding(OK, "secrets", "no literal or exposed secrets")


def _state_dir(job: Job) -> Iterator[Finding]:
    d = job.state_dir
    probe = d if d.exists() else next((p for p in d.parents if p.exists()), Path("/"))
    if not os.access(probe, os.W_OK | os.X_OK):
        yield Finding(PROBLEM, "state", f"state dir {d} is not writable", f"create it: install -d -m 700 {d}")
    else:
        yield Finding(OK, "state", f"state dir {d} is writable" + ("" if d.exists() else " (will be created)"))


def _state_dir_modes(job: Job) -> Iterator[Finding]:
    """Whoever may write the state dir or its locks/ can delete the job's lock and start a second run."""
    for d in (job.state_dir, job.state_dir / "locks"):
        try:
            mode = stat.S_IMODE(os.stat(d).st_mode)
        except OSError:
            continue  # created by the first run with mode 0700
        if mode & 0o022:
            yield Finding(PROBLEM, "state", f"{d} is writable by group or others (mode {mode:04o}): they can "
                          "remove the job's lock file or its journal", f"chmod 700 {d}")


def _destinations(job: Job) -> Iterator[Finding]:
    for cfg in job.destination:
        dest = make_destination(cfg)
        try:
            newest = dest.list(job.name)[:1]
            need = space_needed(newest[0].size if newest else None)
            if isinstance(cfg, LocalDestination):
                root = cfg.path if cfg.path.exists() else next((p for p in cfg.path.parents if p.exists()), Path("/"))
                if not os.access(root, os.W_OK | os.X_OK):
                    yield Finding(PROBLEM, "destination", f"{cfg.name}: {cfg.path} is not writable",
                                  f"install -d -m 700 {cfg.path}")
                    continue
                free = shutil.disk_usage(root).free
                if free < need:
                    yield Finding(PROBLEM, "destination", f"{cfg.name}: {free} bytes free, {need} needed",
                                  "free space or prune")
                    continue
            yield Finding(OK, "destination", f"{cfg.name}: reachable, writable, room for the next backup")
        except VigilError as exc:
            yield Finding(PROBLEM, "destination", str(exc), "check the path, credentials and network")


def _tools(job: Job) -> Iterator[Finding]:
    ctx = SourceContext(job=job, log=logging.getLogger("vigil"), tmp_dir=job.state_dir / "tmp")
    for cfg in job.source:
        yield from (Finding(*check) for check in make_source(cfg, ctx).doctor())
    if not shutil.which("zstd"):
        yield Finding(WARNING, "tools", "zstd is not installed: backups cannot be restored by hand",
                      "apt-get install zstd")


def _drift(job: Job) -> Iterator[Finding]:
    """A job made by `init` against the app's .env today: the database settings it copied then."""
    import msgspec

    from vigil.actions.init import DEFAULT_PORTS, app_database
    from vigil.config.secrets import read_env_file

    if job.laravel is None:
        return
    app = job.laravel.app
    try:
        db, why = app_database(app, read_env_file(app / ".env"))
    except (msgspec.ValidationError, ConfigError) as exc:
        yield Finding(PROBLEM, "drift", f"cannot read the app's settings: {exc}", f"check laravel.app = {app}")
        return
    sources = [s for s in job.source if s.type in ("mysql", "postgres", "sqlite")]
    fix = f"make {job.config_path} and {app / '.env'} agree (the job copied them at init)"
    if db is None or not sources:
        if db is None and sources:
            yield Finding(PROBLEM, "drift", f"source {sources[0].name} backs up a database, but the app's .env "
                          f"names none now: {why}", fix)
        elif db is not None:
            yield Finding(PROBLEM, "drift", f"the app's .env names a {db.type} database that no source of the job "
                          "backs up", fix)
        return
    src = next((s for s in sources if s.name == "db"), sources[0])
    diffs: list[str] = []
    if src.type != db.type:
        diffs.append(f"DB_CONNECTION: the app uses {db.type}, source {src.name} is a {src.type} source")
    elif isinstance(src, SqliteSource):
        if db.path is not None and os.path.normpath(db.path) != str(src.path):
            diffs.append(f"DB_DATABASE is {db.path}, source {src.name} has path = {src.path}")
    else:
        assert isinstance(src, MysqlSource | PostgresSource)
        socket = getattr(src, "socket", None)
        job_has = {"DB_HOST": ("host", None if socket else src.host or "127.0.0.1"),
                   "DB_PORT": ("port", None if socket else src.port or DEFAULT_PORTS[src.type]),
                   "DB_SOCKET": ("socket", str(socket) if socket else None),
                   "DB_DATABASE": ("database", src.database), "DB_USERNAME": ("user", src.user)}
        app_has = {"DB_HOST": db.host, "DB_PORT": db.port, "DB_SOCKET": db.socket, "DB_DATABASE": db.database,
                   "DB_USERNAME": db.user}
        for var, (key, value) in job_has.items():
            if app_has[var] != value:
                diffs.append(f"{var} is {app_has[var] if app_has[var] is not None else 'not set'} in the app's "
                             f".env, source {src.name} has {key} = {value if value is not None else '(not set)'}")
    for diff in diffs:
        yield Finding(PROBLEM, "drift", diff, fix)
    if not diffs:
        yield Finding(OK, "drift", f"source {src.name} matches the database in {app / '.env'}")


def _lock(job: Job) -> Iterator[Finding]:
    """The s3 lease needs conditional writes: probe that the store refuses a second create."""
    if job.lock.backend != "s3":
        return
    cfg = next(d for d in job.destination if isinstance(d, S3Destination) and d.name == job.lock.destination)
    key = f"{cfg.prefix}{job.name}/locks/doctor-probe"
    try:
        s3 = make_destination(cfg).s3  # type: ignore[attr-defined]
        s3.put_object(Bucket=cfg.bucket, Key=key, Body=b"probe")
        try:
            s3.put_object(Bucket=cfg.bucket, Key=key, Body=b"probe", IfNoneMatch="*")
            ok = False  # the store ignored If-None-Match
        except Exception as exc:  # noqa: BLE001
            ok = getattr(exc, "response", {}).get("Error", {}).get("Code") in ("PreconditionFailed", "412")
        s3.delete_object(Bucket=cfg.bucket, Key=key)
    except Exception as exc:  # noqa: BLE001
        yield Finding(PROBLEM, "lock", f"s3 lock on {cfg.name}: cannot probe the store: {exc}",
                      "check the destination")
        return
    if ok:
        yield Finding(OK, "lock", f"s3 lock on {cfg.name}: the store honours conditional writes")
    else:
        yield Finding(PROBLEM, "lock", f"s3 lock on {cfg.name}: the store ignores conditional writes "
                      "(If-None-Match), so the lease cannot keep two hosts apart",
                      "use a store that supports them (AWS S3, recent MinIO) or backend = \"local\"")


def _notifications(job: Job) -> Iterator[Finding]:
    failure = [str(n.name) for n in job.notify if "failure" in n.on]
    if not failure:
        yield Finding(PROBLEM, "notify", "no notification channel receives failures: a failed backup is silent",
                      'add a [[notify]] channel with on = ["failure", ...]')
    else:
        yield Finding(OK, "notify", f"failures go to {', '.join(failure)}")


def _retention(job: Job) -> Iterator[Finding]:
    from vigil.actions.retention import is_empty

    if is_empty(job.retention):
        yield Finding(WARNING, "retention", "no retention policy: every backup is kept until the disk is full",
                      "set [retention] keep_daily etc.")
    else:
        yield Finding(OK, "retention", "retention policy set")


def _schedules(job: Job, root: Path) -> Iterator[Finding]:
    entries = audit(job, root)
    for e in entries:
        if e.ignored:
            yield Finding(PROBLEM, "schedule", f"{e.path} never runs: {e.ignored}",
                          "rename it (letters, digits, - and _ only), chown root, chmod 644")
    live = [e for e in entries if not e.ignored]
    old = [e for e in live if any(legacy in e.command for legacy in job.legacy_commands)]
    if old:
        # Named apart: these are the script vigil replaces, and `schedule install` waits for them to go.
        yield Finding(PROBLEM, "schedule", f"the old backup script runs from {len(old)} schedule(s):\n    "
                      + "\n    ".join(e.describe() for e in old),
                      f"once `vigil run {job.name}` has worked, remove them all, then "
                      f"`vigil schedule install {job.name}` (it refuses while one remains)")
    if not live:
        yield Finding(WARNING, "schedule", f"job {job.name} is not scheduled", f"vigil schedule install {job.name}")
    elif len(live) > 1:
        kinds = {e.kind for e in live}
        mixed = " (cron and systemd timer both)" if "systemd" in kinds and kinds - {"systemd"} else ""
        yield Finding(PROBLEM, "schedule", f"job {job.name} is scheduled {len(live)} times{mixed}:\n    "
                      + "\n    ".join(e.describe() for e in live), "keep exactly one; remove the others")
    else:
        yield Finding(OK, "schedule", f"scheduled once: {live[0].describe()}")
    for a, b, when in same_minute(live):
        yield Finding(PROBLEM, "schedule", f"{a.path} and {b.path} both fire at {when:%a %H:%M}",
                      "remove one of them")
    verifies = [e for e in audit_verify(job, root) if not e.ignored]
    if job.schedule.verify_every and not verifies:
        yield Finding(WARNING, "schedule", f"schedule.verify_every is set but nothing runs "
                      f"`vigil verify --deep {job.name}`",
                      f"vigil schedule remove {job.name} && vigil schedule install {job.name}")
    elif verifies:
        yield Finding(OK, "schedule", "deep verify scheduled: " + "; ".join(e.describe() for e in verifies))
    for e in live:
        yield from _schedule_paths(job, root, e, entry_calls(e, job, "run", root))
    for e in verifies:
        yield from _schedule_paths(job, root, e, entry_calls(e, job, "verify", root))


def _schedule_paths(job: Job, root: Path, entry: Entry, calls: list[VigilCall]) -> Iterator[Finding]:
    """A schedule naming a vigil or config that is not there fails every time it fires."""
    where = f"{entry.path}:{entry.line}" if entry.line else entry.path
    fix = f"vigil schedule remove {job.name} && vigil schedule install {job.name}"
    for call in calls:
        named = [("vigil", call.exe)] if os.sep in call.exe else []
        named += [("config", call.config)] if call.config else []
        for what, path in named:
            if not os.path.isabs(path):
                yield Finding(PROBLEM, "schedule", f"{where}: {what} path {path} is relative: cron and systemd "
                              "start in another directory", fix)
            elif located(root, path) is None:
                yield Finding(PROBLEM, "schedule", f"{where}: {what} {path} does not exist: every scheduled "
                              "run fails", fix)


def _health(job: Job) -> Iterator[Finding]:
    from vigil.actions.health import CRITICAL
    from vigil.actions.health import OK as HEALTHY
    from vigil.actions.monitor import check

    result = check(job, datetime.now(UTC))
    if result.status == HEALTHY:
        yield Finding(OK, "health", "health is OK")
    else:
        yield Finding(PROBLEM if result.status == CRITICAL else WARNING, "health",
                      f"health is {result.status}: " + "; ".join(result.reasons), "see `vigil health`")


def diagnose(job: Job, root: Path, new: bool = False) -> list[Finding]:
    """Every finding about the job; `new`: a job just written, which cannot have a backup yet."""
    findings = [Finding(OK, "config", f"{job.config_path} is valid")]
    for check in (_secrets, _state_dir, _state_dir_modes, _destinations, _tools, _drift, _lock, _notifications,
                  _retention):
        findings.extend(check(job))
    if new:
        findings.append(Finding(OK, "health", f"no backup yet: the first one is `vigil run {job.name}`"))
    else:
        findings.extend(_health(job))
    findings.extend(_schedules(job, root))
    return findings
