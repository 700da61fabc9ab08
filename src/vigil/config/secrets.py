"""Where secrets come from: the process environment, a job's `env_file`, `*_file` keys.

A `*_env` key names a variable; its value is looked up at the moment it is
needed, in the environment first and then in the dotenv file the job names,
so cron, systemd and a shell see the same values without exporting them.
"""

from __future__ import annotations

import io
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import msgspec

from vigil.errors import ConfigError

_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


class EnvVar(str):
    """The name of an environment variable (a `*_env` key), carrying the job's
    `env_file` values that back it up when the process environment lacks it."""

    dotenv: Mapping[str, str | None] = {}
    env_file: Path | None = None

    @classmethod
    def of(cls, value: Any, dotenv: Mapping[str, str | None], env_file: Path | None) -> EnvVar:
        if not isinstance(value, str):
            raise ValueError(f"expected the name of an environment variable, got {value!r}")
        if not _ENV_NAME.fullmatch(value):
            raise ValueError(f"{value!r} is not a valid environment variable name "
                             "(letters, digits and '_', not starting with a digit)")
        var = cls(value)
        var.dotenv, var.env_file = dotenv, env_file
        return var


# What Laravel's env() makes of these words in a .env: no value at all.
_LARAVEL_NOTHING = {"null", "(null)", "empty", "(empty)"}


def env_value(name: str) -> str | None:
    """A `*_env` variable's value: the process environment first, then the job's env_file, read
    as the app reads it (`DB_PASSWORD=null` is no password, not the word)."""
    if name in os.environ:
        return os.environ[name]
    value: str | None = getattr(name, "dotenv", {}).get(name)
    return "" if value is not None and value.strip().lower() in _LARAVEL_NOTHING else value


def env_missing(name: str) -> str:
    """The end of the message for a `*_env` variable set nowhere: where it was looked for."""
    env_file = getattr(name, "env_file", None)
    if env_file:
        return f"environment variable {name} is set neither in the environment nor in env_file {env_file}"
    return f"environment variable {name} is not set (and the job has no env_file)"


# `KEY=` (or `export KEY =`) and the quote its value opens with, if any.
_ASSIGNMENT = re.compile(r"\s*(?:export\s+)?[^=\s]+\s*=\s*(['\"]?)")


def parse_dotenv(text: str, environ: Mapping[str, str]) -> dict[str, str | None]:
    """A dotenv file's values, read as Laravel reads its .env: `${VAR}` is expanded in
    unquoted and double-quoted values, from the process environment first (Laravel leaves a
    variable already set alone), then from the file's earlier lines; a single-quoted value is
    taken literally. python-dotenv's own dotenv_values expands inside single quotes too,
    which would change a password such as 'pa$${x}'."""
    from dotenv.parser import parse_stream  # only for jobs that name an env_file
    from dotenv.variables import parse_variables

    values: dict[str, str | None] = {}
    for binding in parse_stream(io.StringIO(text)):
        if binding.key is None:
            continue
        if binding.value is None:  # a bare `KEY`: set, without a value
            values[binding.key] = None
            continue
        found = _ASSIGNMENT.match(binding.original.string)
        if found is not None and found.group(1) == "'":
            values[binding.key] = binding.value
            continue
        known = {**{k: v for k, v in values.items() if v is not None}, **environ}
        values[binding.key] = "".join(atom.resolve(known) for atom in parse_variables(binding.value))
    return values


def read_env_file(path: Path) -> dict[str, str | None]:
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
    return parse_dotenv(text, os.environ)


def env_for_init(path: Path) -> dict[str, str | None]:
    """An app's .env read as a job's env_file will be: ConfigError naming it when it cannot be."""
    try:
        return read_env_file(path)
    except msgspec.ValidationError as exc:
        raise ConfigError(str(exc)) from None


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
