"""`vigil init --laravel`: a complete job for a Laravel app, made from its `.env`.

`laravel_job` is the pure core: the app's directory and its `.env` values in,
the job file's text out, with notes on what it could not take over. It never
copies a secret: the job reads DB_PASSWORD and MAIL_PASSWORD from the app's
`.env` itself (`env_file`), so the password keeps one home. `app_database`
reads the database settings out of `.env` values; `doctor` uses it again to
find where the app and its job have drifted apart.
"""

from __future__ import annotations

import os
import re
import socket
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from vigil.errors import ConfigError

# What Laravel rebuilds on its own (composer, npm, artisan's caches): not worth a byte of backup.
REGENERATED = ["vendor/", "node_modules/", "storage/framework/cache/", "storage/framework/sessions/",
               "storage/framework/views/", "bootstrap/cache/"]
VOLATILE = ["storage/logs/"]
BACKUP_DIR = "/var/backups/vigil"
JOBS_DIR = "/etc/vigil/jobs"
SCHEDULE = "30 2 * * *"  # daily, in the quiet hours, off the full hour most cron lines pick
RETENTION = {"keep_daily": 7, "keep_weekly": 4, "keep_monthly": 6}
# DB_CONNECTION → vigil's source type.
ENGINES = {"mysql": "mysql", "mariadb": "mysql", "pgsql": "postgres", "sqlite": "sqlite"}
DEFAULT_PORTS = {"mysql": 3306, "postgres": 5432}
# Names an old cron backup script goes by, looked for in the app's usual script folders.
_LEGACY_DIRS = ("", "scripts", "bin", "deploy")
_LEGACY_NAME = re.compile(r".*backup.*\.sh", re.I)
_TOML_ESCAPES = {"\\": "\\\\", '"': '\\"', "\b": "\\b", "\t": "\\t", "\n": "\\n", "\f": "\\f", "\r": "\\r"}


@dataclass(frozen=True)
class AppDatabase:
    """The database an app's `.env` points at, as a vigil source would name it."""

    type: str  # mysql | postgres | sqlite
    host: str | None = None
    port: int | None = None
    socket: str | None = None
    database: str | None = None
    user: str | None = None
    path: Path | None = None  # sqlite


@dataclass
class InitResult:
    name: str
    text: str
    notes: list[str] = field(default_factory=list)


def slug(text: str) -> str:
    """A job name from an app name: "My Shop!" → "my-shop"."""
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def toml_value(value: object) -> str:
    """One TOML value: strings in basic quotes with every character that needs it escaped."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    text = str(value)
    out = []
    for ch in text:
        if ch in _TOML_ESCAPES:
            out.append(_TOML_ESCAPES[ch])
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append(f"\\u{ord(ch):04x}")
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'


def _table(header: str, keys: Mapping[str, object]) -> list[str]:
    lines = ["", header] if header else []
    return lines + [f"{key} = {toml_value(v)}" for key, v in keys.items() if v is not None]


def _ignore_pattern(rel: str) -> str:
    """A path as an anchored gitignore pattern matching only itself."""
    return "/" + re.sub(r"([\\*?\[\]!# ])", r"\\\1", rel)


def _value(env: Mapping[str, str | None], key: str) -> str | None:
    """A setting as Laravel's env() reads it: "null" and "empty" (bare or in parentheses) are unset."""
    value = (env.get(key) or "").strip()
    return None if value.lower() in ("", "null", "(null)", "empty", "(empty)") else value


def app_database(app: Path, env: Mapping[str, str | None]) -> tuple[AppDatabase | None, str | None]:
    """The database of an app's `.env`, or None and a sentence saying why none."""
    connection = _value(env, "DB_CONNECTION")
    if connection is None:
        return None, "DB_CONNECTION is not set in .env: no database source written"
    kind = ENGINES.get(connection.lower())
    if kind is None:
        return None, (f"DB_CONNECTION={connection}: vigil backs up mysql, mariadb, pgsql and sqlite; "
                      "no database source written")
    if kind == "sqlite":
        raw = _value(env, "DB_DATABASE") or "database/database.sqlite"
        if raw == ":memory:" or raw.startswith("file:"):
            return None, f"DB_DATABASE={raw} is not a database file: no database source written"
        # Relative to the app (artisan's working directory), normalised as vigil's loader does.
        return AppDatabase(kind, path=Path(os.path.normpath(app / raw))), None
    url = urlsplit(_value(env, "DB_URL") or _value(env, "DATABASE_URL") or "")  # Laravel prefers it to DB_*
    port = str(url.port) if url.hostname and url.port else _value(env, "DB_PORT")
    if port is not None and not (port.isascii() and port.isdecimal() and 0 < int(port) < 65536):
        raise ConfigError(f"{app / '.env'}: DB_PORT: {port!r} is not a port number")
    database = url.path.lstrip("/") if url.hostname and url.path.strip("/") else _value(env, "DB_DATABASE")
    if database is None:
        raise ConfigError(f"{app / '.env'}: DB_DATABASE is not set (DB_CONNECTION={connection})")
    sock = _value(env, "DB_SOCKET") if kind == "mysql" and not url.hostname else None
    return AppDatabase(kind, host=None if sock else url.hostname or _value(env, "DB_HOST") or "127.0.0.1",
                       port=None if sock else int(port) if port else DEFAULT_PORTS[kind], socket=sock,
                       database=database, user=url.username or _value(env, "DB_USERNAME")), None


def _database_source(db: AppDatabase) -> dict[str, object]:
    if db.type == "sqlite":
        return {"type": "sqlite", "name": "db", "path": str(db.path)}
    keys: dict[str, object] = {"type": db.type, "name": "db", "host": db.host, "port": db.port,
                               "socket": db.socket, "user": db.user, "password_env": "DB_PASSWORD",
                               "database": db.database}
    return keys


def _email(env: Mapping[str, str | None], to: str, host: str) -> tuple[dict[str, object] | None, str | None]:
    """An email channel from Laravel's MAIL_* settings, or None and why not."""
    mailer = _value(env, "MAIL_MAILER") or _value(env, "MAIL_DRIVER")  # MAIL_DRIVER: Laravel before 7
    if mailer is None or mailer.lower() != "smtp":
        return None, (f"MAIL_MAILER is {mailer or 'not set'}, not smtp: vigil cannot send through it, "
                      "so no email channel was written; add a [[notify]] channel to hear about failures")
    smtp_host = _value(env, "MAIL_HOST")
    if smtp_host is None:
        return None, "MAIL_MAILER=smtp but MAIL_HOST is not set: no email channel written"
    port = _value(env, "MAIL_PORT")
    encryption = (_value(env, "MAIL_ENCRYPTION") or "").lower()
    scheme = (_value(env, "MAIL_SCHEME") or "").lower()  # Laravel 11: smtp | smtps
    username = _value(env, "MAIL_USERNAME")
    # As Laravel's mailer does: TLS from the first byte on port 465 (or scheme smtps), STARTTLS
    # elsewhere; and never a password over a plain connection.
    ssl = port == "465" or scheme == "smtps"
    starttls = not ssl and (encryption in ("tls", "ssl") or username is not None)
    channel: dict[str, object] = {
        "type": "email", "name": "email", "on": ["failure", "unhealthy", "recovered"], "smtp_host": smtp_host,
        "smtp_port": int(port) if port and port.isascii() and port.isdecimal() else None,
        "starttls": starttls or None,
        "ssl": ssl or None, "username": username,
        "password_env": "MAIL_PASSWORD" if username and env.get("MAIL_PASSWORD") is not None else None,
        "from": _value(env, "MAIL_FROM_ADDRESS") or f"vigil@{host}", "to": [to]}
    return channel, None


def laravel_job(app: Path, env: Mapping[str, str | None], *, name: str | None = None,
                notify_email: str | None = None, backup_dir: str = BACKUP_DIR, state_dir: str | None = None,
                legacy: list[str] | None = None, host: str | None = None) -> InitResult:
    """The job file for the Laravel app in `app` whose `.env` holds `env`.

    Nothing of `env` is written but host, port, database, user and file names:
    every secret stays in `.env`, which the job names as its env_file."""
    host = host or socket.gethostname()
    job_name = name or slug(_value(env, "APP_NAME") or "") or slug(app.name) or "laravel"
    notes: list[str] = []
    db, why = app_database(app, env)
    if why:
        notes.append(why)
    files: dict[str, object] = {"type": "files", "name": "app", "path": str(app), "exclude": list(REGENERATED),
                                "volatile": list(VOLATILE)}
    if db is not None and db.type == "sqlite" and db.path is not None and db.path.is_relative_to(app):
        # Archived raw, a live database is torn; the sqlite source stores its consistent copy.
        files["exclude"] = [*REGENERATED, _ignore_pattern(db.path.relative_to(app).as_posix())]
    lines = [f"# A backup of the Laravel app in {app}, written by `vigil init --laravel`.",
             "# Secrets stay in the app's .env (env_file): this file holds none.",
             "# Reference: docs/configuration.md; the whole path from here: docs/recipes/laravel.md."]
    lines += _table("", {"name": job_name, "env_file": str(app / ".env"), "state_dir": state_dir,
                         "legacy_commands": legacy or None})
    lines += _table("[laravel]", {"app": str(app)})
    lines += _table("[schedule]", {"cron": SCHEDULE})
    lines += _table("[health]", {"grace": "3h"})
    lines += _table("[retention]", RETENTION)
    lines += _table("[[source]]", files)
    if db is not None:
        lines += _table("[[source]]", _database_source(db))
    lines += _table("[[destination]]", {"type": "local", "name": "local", "path": backup_dir})
    if notify_email:
        channel, why = _email(env, notify_email, host)
        if channel is None:
            notes.append(str(why))
        else:
            lines += _table("[[notify]]", channel)
    else:
        notes.append("no --notify-email given: no email channel written, so a failure would be silent; "
                     "run init again with --notify-email ADDR or add a [[notify]] channel")
    return InitResult(job_name, "\n".join(lines) + "\n", notes)


def is_laravel_app(app: Path) -> str | None:
    """Why `app` is not a Laravel app, or None when it is one."""
    if not app.is_dir():
        return f"{app} is not a directory"
    if not (app / "artisan").is_file():
        return f"{app} is not a Laravel app (no artisan file)"
    if not (app / ".env").is_file():
        return f"{app}/.env not found: copy .env.example to .env and configure the app first"
    return None


def find_legacy_scripts(app: Path) -> list[str]:
    """Old backup scripts shipped with the app (the incident's scripts/backup-run.sh)."""
    found = []
    for folder in _LEGACY_DIRS:
        d = app / folder
        if d.is_dir():
            found += sorted(str(p) for p in d.iterdir() if p.is_file() and _LEGACY_NAME.fullmatch(p.name))
    return found
