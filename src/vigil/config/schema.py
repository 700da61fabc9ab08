"""Job configuration: TOML files validated into msgspec structs.

Everything a job file can say is declared here, with unknown keys rejected so
that a typo can never silently switch a feature off. Loading errors become one
`ConfigError` line naming the file and the key.

msgspec rather than pydantic: every vigil command validates its jobs first,
and pydantic's import and schema building cost ~0.14 s of a ~0.23 s start-up
(a third of the time budget of a deep verify's benchmark); msgspec's cost
~0.015 s. Its error texts are translated into vigil's own words below.
"""

from __future__ import annotations

import importlib
import importlib.util
import io
import os
import re
import tomllib
from collections.abc import Mapping
from datetime import timedelta
from email.utils import parseaddr
from pathlib import Path
from types import ModuleType
from typing import Annotated, Any, Literal, Union
from urllib.parse import urlsplit

import msgspec
from msgspec import Meta, Struct, field

from vigil.errors import ConfigError
from vigil.timeutil import parse_duration

DEFAULT_CONFIG = "/etc/vigil/jobs/"
DEFAULT_STATE_DIR = "/var/lib/vigil"
EVENTS = ("success", "failure", "skipped", "unhealthy", "recovered")
Event = Literal["success", "failure", "skipped", "unhealthy", "recovered"]
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_ADDRESS = re.compile(r"[^@\s<>,;]+@[^@\s<>,;]+")
_HEADER = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")  # an HTTP token (RFC 9110)
_BUCKET = re.compile(r"[A-Za-z0-9._-]{1,255}")  # what botocore accepts
_AGE_KEY = re.compile(r"age1[0-9a-z]{58}")


class Duration(timedelta):
    """A duration written like "90s", "30m", "1h30m" (decoded in `parse_job`)."""

    @classmethod
    def of(cls, value: Any) -> "Duration":
        td = value if isinstance(value, timedelta) else parse_duration(value)
        return cls(days=td.days, seconds=td.seconds, microseconds=td.microseconds)


class EnvVar(str):
    """The name of an environment variable (a `*_env` key), carrying the job's
    `env_file` values that back it up when the process environment lacks it."""

    dotenv: Mapping[str, str | None] = {}
    env_file: Path | None = None

    @classmethod
    def of(cls, value: Any, dotenv: Mapping[str, str | None], env_file: Path | None) -> "EnvVar":
        if not isinstance(value, str):
            raise ValueError(f"expected the name of an environment variable, got {value!r}")
        if not _ENV_NAME.fullmatch(value):
            raise ValueError(f"{value!r} is not a valid environment variable name "
                             "(letters, digits and '_', not starting with a digit)")
        var = cls(value)
        var.dotenv, var.env_file = dotenv, env_file
        return var


def env_value(name: str) -> str | None:
    """A `*_env` variable's value: the process environment first, then the job's env_file."""
    if name in os.environ:
        return os.environ[name]
    return getattr(name, "dotenv", {}).get(name)


def env_missing(name: str) -> str:
    """The end of the message for a `*_env` variable set nowhere: where it was looked for."""
    env_file = getattr(name, "env_file", None)
    if env_file:
        return f"environment variable {name} is set neither in the environment nor in env_file {env_file}"
    return f"environment variable {name} is not set (and the job has no env_file)"


Port = Annotated[int, Meta(ge=1, le=65535)]
Count = Annotated[int, Meta(ge=0)]
Text = Annotated[str, Meta(min_length=1)]
Argv = Annotated[list[str], Meta(min_length=1)]


def _check_name(value: str) -> None:
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


def _check_address(key: str, text: str) -> None:
    if not _ADDRESS.fullmatch(parseaddr(text)[1] or text):
        raise ValueError(f"{key}: {text!r} is not an e-mail address")


def _check_positive(key: str, value: timedelta | None) -> None:
    if value is not None and value <= timedelta(0):
        raise ValueError(f"{key}: must be longer than 0s")


# Validators raise ValueError("KEY: text") to name a key below the struct they
# check; `_explain` joins it to the struct's own place in the file.
class Model(Struct, forbid_unknown_fields=True, frozen=True, kw_only=True):
    pass


class Named(Model):
    """A source, destination or notification: tagged by `type`, named (the type by default)."""

    name: str | None = None

    @property
    def type(self) -> str:
        return self.__struct_config__.tag  # type: ignore[return-value]

    def __post_init__(self) -> None:
        if self.name is not None:
            _check_name(self.name)


class Secret(Named):
    """The three forms of a password: literal (doctor warns), env, file."""

    password: str | None = None
    password_env: EnvVar | None = None
    password_file: Path | None = None

    def __repr__(self) -> str:  # a password never reaches a log through a repr
        return f"{type(self).__name__}(name={self.name!r})"


# --- sources -----------------------------------------------------------------


class FilesSource(Named, tag_field="type", tag="files", kw_only=True):
    path: Path
    exclude: list[str] = []
    volatile: list[str] = []


class SqliteSource(Named, tag_field="type", tag="sqlite", kw_only=True):
    path: Path


class PostgresSource(Secret, tag_field="type", tag="postgres", kw_only=True):
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


class MysqlSource(Secret, tag_field="type", tag="mysql", kw_only=True):
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


class LocalDestination(Named, tag_field="type", tag="local", kw_only=True):
    path: Path
    encrypt: bool = True


class S3Destination(Named, tag_field="type", tag="s3", kw_only=True):
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


class NotifyBase(Named):
    on: list[Event] = field(default_factory=lambda: list(DEFAULT_ON))
    timeout: Duration = Duration(seconds=30)

    def __post_init__(self) -> None:
        super().__post_init__()
        _check_positive("timeout", self.timeout)


class EmailNotify(NotifyBase, tag_field="type", tag="email", kw_only=True):
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
        _check_address("from", self.from_)
        for i, address in enumerate(self.to):
            _check_address(f"to[{i}]", address)
        if self.starttls and self.ssl:
            raise ValueError("starttls and ssl exclude each other (ssl is implicit TLS, port 465)")

    __repr__ = Secret.__repr__


class WebhookNotify(NotifyBase, tag_field="type", tag="webhook", kw_only=True):
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


class HealthchecksNotify(NotifyBase, tag_field="type", tag="healthchecks", kw_only=True):
    url: str
    on: list[Event] = field(default_factory=lambda: ["success", "failure"])

    def __post_init__(self) -> None:
        super().__post_init__()
        _check_url("url", self.url)


class CommandNotify(NotifyBase, tag_field="type", tag="command", kw_only=True):
    argv: Argv

    def __post_init__(self) -> None:
        super().__post_init__()
        _check_argv("argv", self.argv)


class AppriseNotify(NotifyBase, tag_field="type", tag="apprise", kw_only=True):
    urls: Annotated[list[Text], Meta(min_length=1)]

    def __post_init__(self) -> None:
        super().__post_init__()
        _require_extra("apprise", '"apprise"')


Notify = Union[EmailNotify, WebhookNotify, HealthchecksNotify, CommandNotify, AppriseNotify]

# For "unknown type" messages: the types each list takes.
_TAGS = {key: [t.__struct_config__.tag for t in union.__args__]
         for key, union in (("source", Source), ("destination", Destination), ("notify", Notify))}


# --- the rest ------------------------------------------------------------------


class Schedule(Model):
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


class Retention(Model):
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


class Health(Model):
    grace: Duration = Duration(hours=3)  # with [schedule]: how late a due backup may be
    max_age: Duration | None = None  # default 25h without [schedule]; with one, only when set
    max_runtime: Duration = Duration(hours=6)
    renotify: Duration = Duration(hours=6)

    def __post_init__(self) -> None:
        for key in ("grace", "max_age"):
            value = getattr(self, key)
            if value is not None and value <= timedelta(0):
                raise ValueError(f"{key}: must be longer than 0s")


class Retry(Model):
    attempts: Annotated[int, Meta(ge=1, le=100)] = 3
    delay: Duration = Duration(seconds=30)


class Hooks(Model):
    # Where hooks run; None: the job file's directory (relative paths resolve against it too).
    cwd: Path | None = None
    before: list[Argv] = []
    after: list[Argv] = []
    on_failure: list[Argv] = []
    timeout: Duration = Duration(minutes=30)


class Encryption(Model):
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


class Lock(Model):
    backend: Literal["local", "s3"] = "local"
    destination: str | None = None


class Metrics(Model):
    textfile: Path | None = None


class Job(Model, kw_only=True):
    name: str
    source: Annotated[list[Source], Meta(min_length=1)]
    destination: Annotated[list[Destination], Meta(min_length=1)]
    state_dir: Path = Path(DEFAULT_STATE_DIR)
    env_file: Path | None = None
    description: str | None = None
    legacy_commands: list[str] = []
    schedule: Schedule = Schedule()
    retention: Retention = Retention()
    health: Health = Health()
    retry: Retry = Retry()
    hooks: Hooks = Hooks()
    notify: list[Notify] = []
    encryption: Encryption | None = None
    lock: Lock = Lock()
    metrics: Metrics = Metrics()
    # Not from TOML (load_job_file refuses the key): where the job came from, for messages.
    config_path: Path | None = None

    def __post_init__(self) -> None:
        _check_name(self.name)
        for key in ("before", "after", "on_failure"):
            for i, argv in enumerate(getattr(self.hooks, key)):
                _check_argv(f"hooks.{key}[{i}]", argv)
        _check_positive("hooks.timeout", self.hooks.timeout)
        _check_positive("health.max_runtime", self.health.max_runtime)
        _check_positive("health.max_age", self.health.max_age)
        if self.lock.backend == "s3":
            s3 = {d.name for d in self.destination if d.type == "s3"}
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


# --- loading -----------------------------------------------------------------


def _default_names(data: dict[str, Any]) -> dict[str, Any]:
    """Unnamed items are named by their type, then TYPE-2, TYPE-3… in file order (SPEC §2).
    Two equal names are an error, whether given or defaulted."""
    data = dict(data)
    for key in ("source", "destination", "notify"):
        items = data.get(key)
        if not isinstance(items, list):
            continue
        counts: dict[Any, int] = {}
        named: list[Any] = []
        for item in items:
            if isinstance(item, dict) and "name" not in item:
                counts[item.get("type")] = n = counts.get(item.get("type"), 0) + 1
                item = {**item, "name": item.get("type") if n == 1 else f"{item.get('type')}-{n}"}
            named.append(item)
        data[key] = named
        _unique_names(key, items, named)
    return data


def _unique_names(key: str, given: list[Any], named: list[Any]) -> None:
    first: dict[Any, int] = {}
    for i, item in enumerate(named):
        name = item.get("name") if isinstance(item, dict) else None
        if name is None:
            continue
        if name in first:
            j = first[name]
            how = ["the default name" if "name" not in given[k] else "named" for k in (j, i)]
            raise msgspec.ValidationError(
                f"{key}[{i}].name: duplicate name {name!r}: {key}[{j}] is {how[0]} {name!r} "
                f"and {key}[{i}] is {how[1]} {name!r}" + ("" if how == ["named", "named"] else
                                                          "; give the unnamed one a name"))
        first[name] = i


def _no_nul(value: Any, loc: str) -> None:
    """No key takes a NUL character: paths, argv and names cannot carry one to the system."""
    if isinstance(value, str) and "\0" in value:
        raise msgspec.ValidationError(f"{loc or 'job'}: contains a NUL character")
    items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    for k, v in items:
        if isinstance(k, str) and "\0" in k:
            raise msgspec.ValidationError(f"{loc or 'job'}: a key contains a NUL character")
        _no_nul(v, f"{loc}[{k}]" if isinstance(k, int) else _join(loc, k))


def _read_env_file(path: Path) -> dict[str, str | None]:
    from dotenv import dotenv_values  # only for jobs that name an env_file

    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise msgspec.ValidationError(f"env_file: {path} not found") from None
    except IsADirectoryError:
        raise msgspec.ValidationError(f"env_file: {path} is a directory") from None
    except PermissionError as exc:
        raise msgspec.ValidationError(f"env_file: cannot read {path} ({exc.strerror})") from None
    except UnicodeDecodeError as exc:
        raise msgspec.ValidationError(f"env_file: {path} is not valid UTF-8 ({exc.reason})") from None
    return dotenv_values(stream=io.StringIO(text))


def parse_job(data: dict[str, Any], base_dir: Path | None = None) -> Job:
    """A job from a TOML document's dict; relative paths resolve against base_dir.
    Raises msgspec.ValidationError."""

    def path(value: Any) -> Path:
        if not isinstance(value, str):
            raise ValueError(f"expected a path, got {value!r}")
        if not value:
            raise ValueError("expected a path, got an empty string")
        p = Path(value).expanduser()
        if not p.is_absolute() and base_dir is not None:
            p = base_dir / p
        return Path(os.path.normpath(p))

    _no_nul(data, "")
    env_file = path(data["env_file"]) if isinstance(data.get("env_file"), str) and data["env_file"] else None
    dotenv = _read_env_file(env_file) if env_file else {}
    # msgspec asks this hook for the types it does not decode itself.
    decoders = {Duration: Duration.of, Path: path, EnvVar: lambda value: EnvVar.of(value, dotenv, env_file)}
    return msgspec.convert(_default_names(data), Job, dec_hook=lambda kind, value: decoders[kind](value))


_AT = re.compile(r"^(?P<msg>.*?)(?: - at `\$(?P<loc>[^`]*)`)?$", re.S)
_TYPE = re.compile(r"`([^`]+)`")
_WORDS = {"int": "an integer", "str": "a string", "bool": "true or false", "float": "a number",
          "array": "a list", "object": "a table", "null": ""}
_KEY_FIRST = re.compile(r"^([A-Za-z_][A-Za-z0-9_.\[\]-]*): (.*)$", re.S)


def _explain(exc: msgspec.ValidationError) -> tuple[str, str]:
    """msgspec's "Expected `int`, got `str` - at `$.retry.attempts`" as
    ("retry.attempts", "expected an integer, got a string")."""
    m = _AT.match(str(exc))
    assert m is not None  # the pattern matches any text
    msg, loc = m["msg"], (m["loc"] or "").lstrip(".")
    if found := re.match(r"Object contains unknown field `(.+)`$", msg):
        return _join(loc, found[1]), "unknown key"
    if found := re.match(r"Object missing required field `(.+)`$", msg):
        return _join(loc, found[1]), "required key is missing"
    if loc.endswith(".type") and msg.startswith("Invalid value "):
        tags = _TAGS.get(re.sub(r"\[\d+\]\.type$", "", loc), [])
        return loc.removesuffix(".type"), f"unknown type {msg.removeprefix('Invalid value ')} (expected {', '.join(tags)})"
    if msg.startswith("Invalid enum value "):
        return loc, "invalid value " + msg.removeprefix("Invalid enum value ") + (
            f" (expected {', '.join(EVENTS)})" if re.search(r"\.on\[\d+\]$", loc) else "")
    if msg in ("Expected `array` of length >= 1", "Expected `str` of length >= 1"):
        return loc, "must not be empty"
    if msg.startswith("Expected `"):
        def words(t: re.Match[str]) -> str:
            return " or ".join(w for w in (_WORDS.get(p, p) for p in t[1].split(" | ")) if w)
        return loc, "e" + _TYPE.sub(words, msg)[1:]
    if found := _KEY_FIRST.match(msg):  # a validator that names its key
        return _join(loc, found[1]), found[2]
    return loc, msg


def _join(loc: str, key: str) -> str:
    return f"{loc}.{key}" if loc else key


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
    if "config_path" in data:
        raise ConfigError(f"{path}: config_path: unknown key")
    try:
        job = parse_job(data, path.parent.resolve())
    except msgspec.ValidationError as exc:
        loc, message = _explain(exc)
        raise ConfigError(f"{path}: {loc or 'job'}: {message}") from None
    return msgspec.structs.replace(job, config_path=path)


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
        value = env_value(env)
        if value is None:
            raise ConfigError(f"{owner}: {key}_env: {env_missing(env)}")
        return value
    if file:
        try:
            return file.read_text().rstrip("\r\n")
        except OSError as exc:
            raise ConfigError(f"{owner}: {key}_file: cannot read {file} ({exc.strerror})") from None
    return literal
