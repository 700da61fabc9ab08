"""Job configuration: TOML files validated into pydantic models.

Everything a job file can say is declared here, with unknown keys rejected so
that a typo can never silently switch a feature off. Loading errors become one
`ConfigError` line naming the file and the key.
"""

from __future__ import annotations

import os
import re
import tomllib
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any, Literal, Union

# vigil validates its own files and wants no third-party pydantic plugins; this
# also spares every command the scan of all installed packages' entry points
# that looks for them (15-20 ms, more than a tenth of vigil's start-up).
os.environ.setdefault("PYDANTIC_DISABLE_PLUGINS", "__all__")

from pydantic import (  # noqa: E402 - after the setting above
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from vigil.errors import ConfigError
from vigil.timeutil import parse_duration

DEFAULT_CONFIG = "/etc/vigil/jobs/"
DEFAULT_STATE_DIR = "/var/lib/vigil"
EVENTS = ("success", "failure", "skipped", "unhealthy", "recovered")
Event = Literal["success", "failure", "skipped", "unhealthy", "recovered"]
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")


def _duration(value: Any) -> timedelta:
    if isinstance(value, timedelta):
        return value
    return parse_duration(value)


def _resolve(value: Path, info: ValidationInfo) -> Path:
    """Relative paths resolve against the directory of the job file."""
    base = (info.context or {}).get("base_dir")
    value = value.expanduser()
    if not value.is_absolute() and base is not None:
        value = Path(base) / value
    return Path(os.path.normpath(value))


def _name(value: str) -> str:
    if not _NAME.fullmatch(value):
        raise ValueError(f"{value!r} is not a valid name (letters, digits, '.', '_', '-')")
    return value


Duration = Annotated[timedelta, BeforeValidator(_duration)]
RelPath = Annotated[Path, AfterValidator(_resolve)]
Name = Annotated[str, AfterValidator(_name)]
Argv = Annotated[list[str], Field(min_length=1)]


class Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class SecretFields(Model):
    """The three forms of a password: literal (doctor warns), env, file."""

    password: str | None = Field(default=None, repr=False)
    password_env: str | None = None
    password_file: RelPath | None = None


# --- sources -----------------------------------------------------------------


class FilesSource(Model):
    type: Literal["files"]
    name: Name | None = None
    path: RelPath
    exclude: list[str] = []
    volatile: list[str] = []


class SqliteSource(Model):
    type: Literal["sqlite"]
    name: Name | None = None
    path: RelPath


class PostgresSource(SecretFields):
    type: Literal["postgres"]
    name: Name | None = None
    host: str | None = None
    port: int | None = Field(default=None, ge=1, le=65535)
    user: str | None = None
    database: str | None = None
    databases: list[str] | Literal["all"] | None = None
    dsn: str | None = Field(default=None, repr=False)

    @model_validator(mode="after")
    def _one_target(self) -> "PostgresSource":
        given = [k for k in ("database", "databases", "dsn") if getattr(self, k) is not None]
        if len(given) > 1 and not (given == ["database", "dsn"]):
            raise ValueError(f"give only one of database, databases, dsn (got {', '.join(given)})")
        if not given:
            raise ValueError("one of database, databases or dsn is required")
        return self


class MysqlSource(SecretFields):
    type: Literal["mysql"]
    name: Name | None = None
    host: str | None = None
    port: int | None = Field(default=None, ge=1, le=65535)
    socket: RelPath | None = None
    user: str | None = None
    database: str | None = None
    databases: list[str] | Literal["all"] | None = None

    @model_validator(mode="after")
    def _one_target(self) -> "MysqlSource":
        if (self.database is None) == (self.databases is None):
            raise ValueError("give exactly one of database or databases")
        if self.port is not None and self.socket is not None:
            raise ValueError("give port or socket, not both")
        return self


Source = Annotated[
    Union[FilesSource, SqliteSource, PostgresSource, MysqlSource], Field(discriminator="type")
]


# --- destinations --------------------------------------------------------------


class LocalDestination(Model):
    type: Literal["local"]
    name: Name | None = None
    path: RelPath
    encrypt: bool = True


class S3Destination(Model):
    type: Literal["s3"]
    name: Name | None = None
    bucket: str
    prefix: str = ""
    endpoint_url: str | None = None
    region: str | None = None
    access_key_id_env: str | None = None
    secret_access_key_env: str | None = None
    storage_class: str | None = None
    sse: str | None = None
    encrypt: bool = True


Destination = Annotated[Union[LocalDestination, S3Destination], Field(discriminator="type")]


# --- notifications -------------------------------------------------------------

DEFAULT_ON: list[Event] = ["failure", "unhealthy", "recovered"]


class NotifyBase(Model):
    name: Name | None = None
    on: list[Event] = DEFAULT_ON
    timeout: Duration = timedelta(seconds=30)


class EmailNotify(NotifyBase, SecretFields):
    type: Literal["email"]
    smtp_host: str = "localhost"
    smtp_port: int | None = Field(default=None, ge=1, le=65535)
    starttls: bool = False
    ssl: bool = False
    username: str | None = None
    tls_ca_file: RelPath | None = None
    tls_verify: bool = True
    from_: str = Field(alias="from")
    to: list[str] = Field(min_length=1)

    @model_validator(mode="after")
    def _tls(self) -> "EmailNotify":
        if self.starttls and self.ssl:
            raise ValueError("starttls and ssl exclude each other (ssl is implicit TLS, port 465)")
        return self


class WebhookNotify(NotifyBase):
    type: Literal["webhook"]
    url: str
    headers: dict[str, str] = {}


class HealthchecksNotify(NotifyBase):
    type: Literal["healthchecks"]
    url: str
    on: list[Event] = ["success", "failure"]


class CommandNotify(NotifyBase):
    type: Literal["command"]
    argv: Argv


class AppriseNotify(NotifyBase):
    type: Literal["apprise"]
    urls: list[str] = Field(min_length=1)


Notify = Annotated[
    Union[EmailNotify, WebhookNotify, HealthchecksNotify, CommandNotify, AppriseNotify],
    Field(discriminator="type"),
]


# --- the rest ------------------------------------------------------------------


class Schedule(Model):
    cron: str | None = None

    @field_validator("cron")
    @classmethod
    def _cron(cls, value: str | None) -> str | None:
        from croniter import croniter

        if value is not None and not croniter.is_valid(value):
            raise ValueError(f"invalid cron expression {value!r}")
        return value


class Retention(Model):
    keep_last: int | None = Field(default=None, ge=0)
    keep_hourly: int | None = Field(default=None, ge=0)
    keep_daily: int | None = Field(default=None, ge=0)
    keep_weekly: int | None = Field(default=None, ge=0)
    keep_monthly: int | None = Field(default=None, ge=0)
    keep_yearly: int | None = Field(default=None, ge=0)
    timezone: str = "UTC"


class Health(Model):
    max_age: Duration | None = None
    max_runtime: Duration = timedelta(hours=6)
    renotify: Duration = timedelta(hours=6)


class Retry(Model):
    attempts: int = Field(default=3, ge=1, le=100)
    delay: Duration = timedelta(seconds=30)


class Hooks(Model):
    before: list[Argv] = []
    after: list[Argv] = []
    on_failure: list[Argv] = []
    timeout: Duration = timedelta(minutes=30)


class Encryption(Model):
    recipients: list[str] = []
    passphrase_env: str | None = None
    passphrase_file: RelPath | None = None
    identity_file: RelPath | None = None

    @model_validator(mode="after")
    def _some_key(self) -> "Encryption":
        if not self.recipients and not self.passphrase_env and not self.passphrase_file:
            raise ValueError("give recipients, passphrase_env or passphrase_file")
        if self.recipients and (self.passphrase_env or self.passphrase_file):
            # age allows a passphrase only as the sole recipient of a file.
            raise ValueError("give recipients or a passphrase, not both")
        if self.passphrase_env and self.passphrase_file:
            raise ValueError("give passphrase_env or passphrase_file, not both")
        return self


class Lock(Model):
    backend: Literal["local", "s3"] = "local"
    destination: str | None = None


class Metrics(Model):
    textfile: RelPath | None = None


class Job(Model):
    name: Name
    state_dir: RelPath = Path(DEFAULT_STATE_DIR)
    description: str | None = None
    legacy_commands: list[str] = []
    schedule: Schedule = Schedule()
    source: list[Source] = Field(min_length=1)
    destination: list[Destination] = Field(min_length=1)
    retention: Retention = Retention()
    health: Health = Health()
    retry: Retry = Retry()
    hooks: Hooks = Hooks()
    notify: list[Notify] = []
    encryption: Encryption | None = None
    lock: Lock = Lock()
    metrics: Metrics = Metrics()
    # Not from TOML: where the job came from, for messages.
    config_path: Path | None = Field(default=None, exclude=True)

    @model_validator(mode="before")
    @classmethod
    def _default_names(cls, data: Any) -> Any:
        """Sources default to their type as name, destinations too (SPEC §2)."""
        if not isinstance(data, dict):
            return data
        data = dict(data)
        for key in ("source", "destination", "notify"):
            items = data.get(key)
            if isinstance(items, list):
                data[key] = [
                    {**item, "name": item.get("type")} if isinstance(item, dict) and "name" not in item else item
                    for item in items
                ]
        return data

    @model_validator(mode="after")
    def _unique(self) -> "Job":
        for key in ("source", "destination", "notify"):
            seen: set[str] = set()
            for i, item in enumerate(getattr(self, key)):
                if item.name in seen:
                    raise ValueError(f"{key}[{i}].name: duplicate name {item.name!r}")
                seen.add(item.name)
        if self.lock.backend == "s3":
            s3 = {d.name for d in self.destination if d.type == "s3"}
            if self.lock.destination not in s3:
                raise ValueError(
                    f"lock.destination: must name an s3 destination (have: {', '.join(sorted(s3)) or 'none'})"
                )
        return self

    def source_named(self, name: str) -> Source:
        for s in self.source:
            if s.name == name:
                return s
        raise ConfigError(
            f"{self.config_path}: job {self.name!r} has no source {name!r} "
            f"(sources: {', '.join(s.name for s in self.source)})"
        )


# --- loading -----------------------------------------------------------------


def _loc(loc: tuple[Any, ...], data: Any) -> str:
    """("source", 0, "files", "exclude") -> "source[0].exclude"; the union tag is dropped."""
    out = ""
    node = data
    skip_tag = False
    for part in loc:
        if skip_tag and isinstance(part, str) and isinstance(node, dict) and node.get("type") == part:
            skip_tag = False
            continue
        skip_tag = False
        if isinstance(part, int):
            out += f"[{part}]"
            skip_tag = True
            node = node[part] if isinstance(node, list) and part < len(node) else None
        else:
            out += ("." if out else "") + str(part)
            node = node.get(part) if isinstance(node, dict) else None
    return out


def _message(err: dict[str, Any]) -> str:
    msg = err["msg"]
    if err["type"] == "extra_forbidden":
        return "unknown key"
    if err["type"] == "missing":
        return "required key is missing"
    if msg.startswith("Value error, "):
        msg = msg[len("Value error, "):]
    if err["type"] == "union_tag_invalid":
        return f"unknown type {err.get('input', {}).get('type')!r} (expected {err['ctx']['expected_tags']})"
    return msg


def load_job_file(path: Path) -> Job:
    """Load and validate one job file; raise ConfigError naming file and key."""
    try:
        with open(path, "rb") as fh:
            data = tomllib.load(fh)
    except FileNotFoundError:
        raise ConfigError(f"{path}: config file not found") from None
    except IsADirectoryError:
        raise ConfigError(f"{path}: is a directory, expected a .toml job file") from None
    except PermissionError as exc:
        raise ConfigError(f"{path}: cannot read config file ({exc.strerror})") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: TOML syntax error: {exc}") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not valid UTF-8 ({exc.reason})") from None
    data.setdefault("name", path.stem)
    try:
        job = Job.model_validate(data, context={"base_dir": path.parent.resolve()})
    except ValidationError as exc:
        first = exc.errors()[0]
        loc = _loc(first["loc"], data)
        message = _message(first)
        # Errors raised in whole-model validators already name their key.
        if not loc and ":" in message.split(" ")[0]:
            loc, message = message.split(": ", 1)
        more = f" (and {exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
        raise ConfigError(f"{path}: {loc or 'job'}: {message}{more}") from None
    return job.model_copy(update={"config_path": path})


def load_config(path: str | os.PathLike[str] | None) -> list[Job]:
    """Load one job file or every *.toml in a directory."""
    raw = path or os.environ.get("VIGIL_CONFIG") or DEFAULT_CONFIG
    p = Path(raw)
    if p.is_symlink() and not p.exists():
        raise ConfigError(f"{p}: dangling symlink (points to {os.readlink(p)})")
    if p.is_dir():
        files = sorted(p.glob("*.toml"))
        if not files:
            raise ConfigError(f"{p}: config directory holds no *.toml job files")
        for f in files:
            if f.is_symlink() and not f.exists():
                raise ConfigError(f"{f}: dangling symlink (points to {os.readlink(f)})")
    elif p.exists():
        files = [p]
    else:
        raise ConfigError(f"{p}: config file or directory not found")
    jobs = [load_job_file(f) for f in files]
    seen: dict[str, Path] = {}
    for job in jobs:
        if job.name in seen:
            raise ConfigError(f"{job.config_path}: name: job {job.name!r} is also defined in {seen[job.name]}")
        seen[job.name] = job.config_path  # type: ignore[assignment]
    return jobs


def select_jobs(jobs: list[Job], names: list[str] | None) -> list[Job]:
    if not names:
        return jobs
    by_name = {j.name: j for j in jobs}
    unknown = [n for n in names if n not in by_name]
    if unknown:
        raise ConfigError(
            f"unknown job {unknown[0]!r} (known: {', '.join(sorted(by_name)) or 'none'})"
        )
    return [by_name[n] for n in names]


def read_secret(owner: str, key: str, literal: str | None, env: str | None, file: Path | None) -> str | None:
    """Resolve a secret from its literal / *_env / *_file forms at the moment it is needed."""
    if env:
        value = os.environ.get(env)
        if value is None:
            raise ConfigError(f"{owner}: {key}_env: environment variable {env} is not set")
        return value
    if file:
        try:
            return file.read_text().rstrip("\r\n")
        except OSError as exc:
            raise ConfigError(f"{owner}: {key}_file: cannot read {file} ({exc.strerror})") from None
    return literal
