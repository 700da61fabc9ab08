"""What a job file can say: msgspec structs, each value checked as it is decoded.

Unknown keys are rejected so that a typo can never silently switch a feature
off; `config.load` turns a file into a `Job` and every error into one
`ConfigError` line naming the file and the key.

msgspec rather than pydantic: every vigil command validates its jobs first,
and pydantic's import and schema building cost ~0.14 s of a ~0.23 s start-up
(a third of the time budget of a deep verify's benchmark); msgspec's cost
~0.015 s. Its error texts are translated into vigil's own words below.
"""

from __future__ import annotations

import importlib
import importlib.util
import re
import typing
from datetime import timedelta
from email.utils import parseaddr
from pathlib import Path
from types import ModuleType
from typing import Annotated, Any, Literal, Union
from urllib.parse import urlsplit

import msgspec
from msgspec import Meta, Struct, field

from vigil.config.secrets import EnvVar
from vigil.errors import ConfigError
from vigil.timeutil import parse_duration

DEFAULT_STATE_DIR = "/var/lib/vigil"
EVENTS = ("success", "failure", "skipped", "unhealthy", "recovered")
Event = Literal["success", "failure", "skipped", "unhealthy", "recovered"]
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
_ADDRESS = re.compile(r"[^@\s<>,;]+@[^@\s<>,;]+")
_HEADER = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")  # an HTTP token (RFC 9110)
_BUCKET = re.compile(r"[A-Za-z0-9._-]{1,255}")  # what botocore accepts
_AGE_KEY = re.compile(r"age1[0-9a-z]{58}")


class Duration(timedelta):
    """A duration written like "90s", "30m", "1h30m" (decoded in `parse_job`)."""

    @classmethod
    def of(cls, value: Any) -> Duration:
        td = value if isinstance(value, timedelta) else parse_duration(value)
        return cls(days=td.days, seconds=td.seconds, microseconds=td.microseconds)


Port = Annotated[int, Meta(ge=1, le=65535)]
Count = Annotated[int, Meta(ge=0)]
Text = Annotated[str, Meta(min_length=1)]
Argv = Annotated[list[str], Meta(min_length=1)]


def check_name(value: str) -> None:
    if not _NAME.fullmatch(value):
        raise ValueError(f"name: {value!r} is not a valid name (letters, digits, '.', '_', '-')")


def _check_argv(key: str, argv: list[str]) -> None:
    # An empty argument is legitimate (`ssh-keygen -N ""`); an empty program never runs.
    if not argv[0]:
        raise ValueError(f"{key}[0]: the program name is empty")


def _check_url(key: str, url: str) -> None:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"{key}: {url!r} is not an http:// or https:// URL")
    try:
        parts.port  # noqa: B018 - raises for a port out of range or not a number
    except ValueError:
        raise ValueError(f"{key}: {url!r} has an invalid port") from None


def check_address(key: str, text: str) -> None:
    if not _ADDRESS.fullmatch(parseaddr(text)[1] or text):
        raise ValueError(f"{key}: {text!r} is not an e-mail address")


def _check_positive(key: str, value: timedelta | None) -> None:
    if value is not None and value <= timedelta(0):
        raise ValueError(f"{key}: must be longer than 0s")


# Validators raise ValueError("KEY: text") to name a key below the struct they
# check; `_explain` joins it to the struct's own place in the file.
class Model(Struct, forbid_unknown_fields=True, frozen=True, kw_only=True):
    pass


class Named(Model, frozen=True):
    """A source, destination or notification: tagged by `type`, named (the type by default)."""

    # Filled in by the loader where the file leaves it out (the type, TYPE-2, ...).
    name: str = ""

    @property
    def type(self) -> str:
        return self.__struct_config__.tag  # type: ignore[return-value]

    def __post_init__(self) -> None:
        check_name(self.name)


class Secret(Named, frozen=True):
    """The three forms of a password: literal (doctor warns), env, file."""

    password: str | None = None
    password_env: EnvVar | None = None
    password_file: Path | None = None

    def __repr__(self) -> str:  # a password never reaches a log through a repr
        return f"{type(self).__name__}(name={self.name!r})"


# --- sources -----------------------------------------------------------------


class FilesSource(Named, tag_field="type", tag="files", kw_only=True, frozen=True):
    path: Path
    exclude: list[str] = []
    volatile: list[str] = []


class SqliteSource(Named, tag_field="type", tag="sqlite", kw_only=True, frozen=True):
    path: Path


class PostgresSource(Secret, tag_field="type", tag="postgres", kw_only=True, frozen=True):
    host: Text | None = None
    port: Port | None = None
    user: Text | None = None
    database: Text | None = None
    databases: Annotated[list[Text], Meta(min_length=1)] | Literal["all"] | None = None
    dsn: Text | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        given = [k for k in ("database", "databases", "dsn") if getattr(self, k) is not None]
        if len(given) > 1 and not (given == ["database", "dsn"]):
            raise ValueError(f"give only one of database, databases, dsn (got {', '.join(given)})")
        if not given:
            raise ValueError("one of database, databases or dsn is required")


class MysqlSource(Secret, tag_field="type", tag="mysql", kw_only=True, frozen=True):
    host: Text | None = None
    port: Port | None = None
    socket: Path | None = None
    user: Text | None = None
    database: Text | None = None
    databases: Annotated[list[Text], Meta(min_length=1)] | Literal["all"] | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        if (self.database is None) == (self.databases is None):
            raise ValueError("give exactly one of database or databases")
        if self.port is not None and self.socket is not None:
            raise ValueError("give port or socket, not both")


Source = Union[FilesSource, SqliteSource, PostgresSource, MysqlSource]


# --- destinations --------------------------------------------------------------


# The optional dependencies, by the extra that installs each.
EXTRAS = {"boto3": "s3", "apprise": "apprise"}


def _require_extra(module: str, what: str) -> None:
    """A type that needs an optional dependency: one line naming what to install.
    find_spec looks, without importing (boto3 alone costs ~0.2 s of start-up)."""
    if importlib.util.find_spec(module) is None:
        raise ValueError(f"type: {what} needs {module}, which is not installed: "
                         f"pip install 'vigil-backup[{EXTRAS[module]}]'")


def import_extra(module: str, owner: str) -> ModuleType:
    """Import an optional dependency where it is used. Loading the job found it;
    an install that is broken all the same (boto3 without botocore) ends in one
    line saying what to reinstall, not in a Python error."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise ConfigError(f"{owner}: {module} cannot be imported ({exc}): "
                          f"pip install 'vigil-backup[{EXTRAS[module]}]'") from None


class LocalDestination(Named, tag_field="type", tag="local", kw_only=True, frozen=True):
    path: Path
    encrypt: bool = True


class S3Destination(Named, tag_field="type", tag="s3", kw_only=True, frozen=True):
    bucket: str
    prefix: str = ""
    endpoint_url: str | None = None
    region: Text | None = None
    access_key_id_env: EnvVar | None = None
    secret_access_key_env: EnvVar | None = None
    storage_class: Text | None = None
    sse: Text | None = None
    encrypt: bool = True

    def __post_init__(self) -> None:
        super().__post_init__()
        _require_extra("boto3", '"s3"')
        if not _BUCKET.fullmatch(self.bucket):
            raise ValueError(f"bucket: {self.bucket!r} is not a valid bucket name")
        if self.endpoint_url is not None:
            _check_url("endpoint_url", self.endpoint_url)
        # A prefix is a folder: "vigil", "vigil/" and "/vigil" all store under "vigil/"; "" is the bucket root.
        folder = "/".join(part for part in self.prefix.split("/") if part)
        msgspec.structs.force_setattr(self, "prefix", folder + "/" if folder else "")


Destination = Union[LocalDestination, S3Destination]


# --- notifications -------------------------------------------------------------

DEFAULT_ON: list[Event] = ["failure", "unhealthy", "recovered"]


class NotifyBase(Named, frozen=True):
    on: list[Event] = field(default_factory=lambda: list(DEFAULT_ON))
    timeout: Duration = Duration(seconds=30)

    def __post_init__(self) -> None:
        super().__post_init__()
        _check_positive("timeout", self.timeout)


class EmailNotify(NotifyBase, tag_field="type", tag="email", kw_only=True, frozen=True):
    from_: str = field(name="from")
    to: Annotated[list[str], Meta(min_length=1)]
    smtp_host: Text = "localhost"
    smtp_port: Port | None = None
    starttls: bool = False
    ssl: bool = False
    username: str | None = None
    # Secret's three fields again: a struct has one line of bases with fields.
    password: str | None = None
    password_env: EnvVar | None = None
    password_file: Path | None = None
    tls_ca_file: Path | None = None
    tls_verify: bool = True

    def __post_init__(self) -> None:
        super().__post_init__()
        check_address("from", self.from_)
        for i, address in enumerate(self.to):
            check_address(f"to[{i}]", address)
        if self.starttls and self.ssl:
            raise ValueError("starttls and ssl exclude each other (ssl is implicit TLS, port 465)")

    __repr__ = Secret.__repr__


class WebhookNotify(NotifyBase, tag_field="type", tag="webhook", kw_only=True, frozen=True):
    url: str
    headers: dict[str, str] = {}

    def __post_init__(self) -> None:
        super().__post_init__()
        _check_url("url", self.url)
        for name, value in self.headers.items():
            if not _HEADER.fullmatch(name):
                raise ValueError(f"headers: {name!r} is not a valid HTTP header name")
            if "\r" in value or "\n" in value:
                raise ValueError(f"headers.{name}: a header value cannot hold a line break")


class HealthchecksNotify(NotifyBase, tag_field="type", tag="healthchecks", kw_only=True, frozen=True):
    url: str
    on: list[Event] = field(default_factory=lambda: ["success", "failure"])

    def __post_init__(self) -> None:
        super().__post_init__()
        _check_url("url", self.url)


class CommandNotify(NotifyBase, tag_field="type", tag="command", kw_only=True, frozen=True):
    argv: Argv

    def __post_init__(self) -> None:
        super().__post_init__()
        _check_argv("argv", self.argv)


class AppriseNotify(NotifyBase, tag_field="type", tag="apprise", kw_only=True, frozen=True):
    urls: Annotated[list[Text], Meta(min_length=1)]

    def __post_init__(self) -> None:
        super().__post_init__()
        _require_extra("apprise", '"apprise"')


Notify = Union[EmailNotify, WebhookNotify, HealthchecksNotify, CommandNotify, AppriseNotify]

# For "unknown type" messages: the types each list takes.
_TAGS = {key: [t.__struct_config__.tag for t in typing.get_args(union)]
         for key, union in (("source", Source), ("destination", Destination), ("notify", Notify))}


# --- the rest ------------------------------------------------------------------


class Schedule(Model, frozen=True):
    cron: str | None = None
    verify_every: Duration | None = None  # a second schedule runs `verify --deep` this often

    def __post_init__(self) -> None:
        # Only jobs that have a schedule pay for the import (croniter, quoting).
        if self.cron is not None:
            from vigil.formats.calendar import parse_cron

            parse_cron(self.cron)  # refuses what cron or a systemd timer cannot run as written
        if self.verify_every is not None:
            from vigil.formats.calendar import verify_every_cron

            try:
                verify_every_cron(self.verify_every)
            except ValueError as exc:
                raise ValueError(f"verify_every: {exc}") from None


class Retention(Model, frozen=True):
    keep_last: Count | None = None
    keep_hourly: Count | None = None
    keep_daily: Count | None = None
    keep_weekly: Count | None = None
    keep_monthly: Count | None = None
    keep_yearly: Count | None = None
    timezone: str = "UTC"

    def __post_init__(self) -> None:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            ZoneInfo(self.timezone)
        except (ZoneInfoNotFoundError, ValueError, OSError):
            raise ValueError(f"timezone: unknown time zone {self.timezone!r} (e.g. \"UTC\", \"Europe/Berlin\")") \
                from None


class Health(Model, frozen=True):
    grace: Duration = Duration(hours=3)  # with [schedule]: how late a due backup may be
    max_age: Duration | None = None  # default 25h without [schedule]; with one, only when set
    max_runtime: Duration = Duration(hours=6)
    renotify: Duration = Duration(hours=6)

    def __post_init__(self) -> None:
        for key in ("grace", "max_age"):
            value = getattr(self, key)
            if value is not None and value <= timedelta(0):
                raise ValueError(f"{key}: must be longer than 0s")


class Files(Model, frozen=True):
    """How files sources are stored (SPEC §11)."""

    incremental: bool = True  # store only what changed since the base
    full_every: Duration = Duration(days=7)  # a chain never reaches back further than this to its full

    def __post_init__(self) -> None:
        _check_positive("files.full_every", self.full_every)


class Retry(Model, frozen=True):
    attempts: Annotated[int, Meta(ge=1, le=100)] = 3
    delay: Duration = Duration(seconds=30)


class Hooks(Model, frozen=True):
    # Where hooks run; None: the job file's directory (relative paths resolve against it too).
    cwd: Path | None = None
    before: list[Argv] = []
    after: list[Argv] = []
    on_failure: list[Argv] = []
    timeout: Duration = Duration(minutes=30)


class Encryption(Model, frozen=True):
    recipients: list[str] = []
    passphrase_env: EnvVar | None = None
    passphrase_file: Path | None = None
    identity_file: Path | None = None

    def __post_init__(self) -> None:
        for i, key in enumerate(self.recipients):
            if not _AGE_KEY.fullmatch(key.strip()):
                raise ValueError(f"recipients[{i}]: not an age public key (age1...)")
        if not self.recipients and not self.passphrase_env and not self.passphrase_file:
            raise ValueError("give recipients, passphrase_env or passphrase_file")
        if self.recipients and (self.passphrase_env or self.passphrase_file):
            # age allows a passphrase only as the sole recipient of a file.
            raise ValueError("give recipients or a passphrase, not both")
        if self.passphrase_env and self.passphrase_file:
            raise ValueError("give passphrase_env or passphrase_file, not both")


class Lock(Model, frozen=True):
    backend: Literal["local", "s3"] = "local"
    destination: str | None = None


class Metrics(Model, frozen=True):
    textfile: Path | None = None


class Laravel(Model, frozen=True):
    """The Laravel app a job was made for (`vigil init --laravel`): doctor compares
    the job's database settings with the app's .env to catch drift."""

    app: Path


class AdminConnection(Model, frozen=True):
    """The connection `restore` and `verify --restore-test` use to create databases:
    an application's own user often may not. Unset keys: the source's own."""

    host: Text | None = None
    port: Port | None = None
    socket: Path | None = None
    user: Text | None = None
    password_env: EnvVar | None = None
    password_file: Path | None = None

    def __post_init__(self) -> None:
        if self.password_env and self.password_file:
            raise ValueError("give password_env or password_file, not both")
        if self.port is not None and self.socket is not None:
            raise ValueError("give port or socket, not both")

    def __repr__(self) -> str:
        return f"AdminConnection(host={self.host!r}, user={self.user!r})"


class Job(Model, kw_only=True, frozen=True):
    name: str
    source: Annotated[list[Source], Meta(min_length=1)]
    destination: Annotated[list[Destination], Meta(min_length=1)]
    state_dir: Path = Path(DEFAULT_STATE_DIR)
    env_file: Path | None = None
    description: str | None = None
    legacy_commands: list[str] = []
    schedule: Schedule = Schedule()
    retention: Retention = Retention()
    files: Files = Files()
    health: Health = Health()
    retry: Retry = Retry()
    hooks: Hooks = Hooks()
    notify: list[Notify] = []
    encryption: Encryption | None = None
    lock: Lock = Lock()
    metrics: Metrics = Metrics()
    laravel: Laravel | None = None
    restore: AdminConnection | None = None
    # Not from TOML (load_job_file refuses the key): where the job came from, for messages.
    config_path: Path | None = None

    def __post_init__(self) -> None:
        check_name(self.name)
        for key in ("before", "after", "on_failure"):
            for i, argv in enumerate(getattr(self.hooks, key)):
                _check_argv(f"hooks.{key}[{i}]", argv)
        _check_positive("hooks.timeout", self.hooks.timeout)
        _check_positive("health.max_runtime", self.health.max_runtime)
        _check_positive("health.max_age", self.health.max_age)
        if self.lock.backend == "s3":
            s3 = {str(d.name) for d in self.destination if d.type == "s3"}
            if self.lock.destination not in s3:
                raise ValueError(
                    f"lock.destination: must name an s3 destination (have: {', '.join(sorted(s3)) or 'none'})"
                )

    def source_named(self, name: str) -> Source:
        for s in self.source:
            if s.name == name:
                return s
        raise ConfigError(
            f"{self.config_path}: job {self.name!r} has no source {name!r} "
            f"(sources: {', '.join(str(s.name) for s in self.source)})"
        )
