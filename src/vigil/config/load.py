"""From job files to validated `Job`s: TOML parsing, default names, env_file, and
msgspec's errors said in vigil's words (one line naming the file and the key).
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgspec

from vigil.config.schema import _TAGS, EVENTS, Duration, Job
from vigil.config.secrets import EnvVar, read_env_file
from vigil.errors import ConfigError

DEFAULT_CONFIG = "/etc/vigil/jobs/"


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
    dotenv = read_env_file(env_file) if env_file else {}
    # msgspec asks this hook for the types it does not decode itself.
    decoders: dict[type, Callable[[Any], Any]] = {
        Duration: Duration.of, Path: path, EnvVar: lambda value: EnvVar.of(value, dotenv, env_file)}
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
        value = msg.removeprefix("Invalid value ")
        return loc.removesuffix(".type"), f"unknown type {value} (expected {', '.join(tags)})"
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
