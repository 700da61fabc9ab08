"""Job files for tests: Python values in, TOML out.

`JobFile` is a whole job; `toml` renders any mapping, so helpers that hand out
a fragment (a source, a destination, a notification) quote their values the
same way. Every table in a list is written as `[[key]]`, never inline: a test
may append keys to the last table of a fragment, and a fragment may follow any
other TOML. A value that is None is left out (TOML has no null).

A small writer of its own because tomli-w writes short lists of tables inline
(`source = [{...}]`), which is not a fragment one can append to.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePath
from typing import Any

_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")
_ESCAPES = {"\\": "\\\\", '"': '\\"', "\b": "\\b", "\t": "\\t", "\n": "\\n", "\f": "\\f", "\r": "\\r"}


def toml(doc: Mapping[str, Any]) -> str:
    """`doc` as a TOML document: its plain keys first, then its tables."""
    lines = _table([], doc)
    while lines and not lines[0]:
        lines.pop(0)
    return "\n".join(lines) + "\n"


@dataclass
class JobFile:
    """One job: its name, state directory, lists of tables, and any other key or
    table (`extra`: env_file, retention, hooks, encryption, …)."""

    name: str = "app"
    state_dir: Path | str | None = None
    sources: list[dict[str, Any]] = field(default_factory=list)
    destinations: list[dict[str, Any]] = field(default_factory=list)
    notify: list[dict[str, Any]] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)

    def render(self) -> str:
        lists = {"source": self.sources, "destination": self.destinations, "notify": self.notify}
        return toml({"name": self.name, "state_dir": self.state_dir, **self.extra,
                     **{key: items for key, items in lists.items() if items}})


def files_source(path: Path | str, name: str = "app", **keys: Any) -> dict[str, Any]:
    return {"type": "files", "name": name, "path": path, **keys}


def sqlite_source(path: Path | str, name: str = "db", **keys: Any) -> dict[str, Any]:
    return {"type": "sqlite", "name": name, "path": path, **keys}


def local_destination(path: Path | str, **keys: Any) -> dict[str, Any]:
    return {"type": "local", "path": path, **keys}


def _table(path: list[str], table: Mapping[str, Any]) -> list[str]:
    items = [(key, value) for key, value in table.items() if value is not None]
    lines = [f"{_key(key)} = {_value(value)}" for key, value in items
             if not isinstance(value, Mapping) and not _is_table_list(value)]
    for key, value in items:
        header = ".".join(_key(k) for k in [*path, key])
        if isinstance(value, Mapping):
            lines += ["", f"[{header}]", *_table([*path, key], value)]
        elif _is_table_list(value):
            for item in value:
                lines += ["", f"[[{header}]]", *_table([*path, key], item)]
    return lines


def _is_table_list(value: Any) -> bool:
    return isinstance(value, list) and bool(value) and all(isinstance(v, Mapping) for v in value)


def _key(key: str) -> str:
    return key if _BARE_KEY.fullmatch(key) else _string(key)


def _string(text: str) -> str:
    def escape(ch: str) -> str:
        if ch in _ESCAPES:
            return _ESCAPES[ch]
        return f"\\u{ord(ch):04x}" if ord(ch) < 0x20 or ord(ch) == 0x7F else ch

    return '"' + "".join(escape(ch) for ch in text) + '"'


def _value(value: Any) -> str:
    if isinstance(value, bool):  # before int: a bool is an int
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        return ("inf" if value > 0 else "-inf") if math.isinf(value) else repr(value)
    if isinstance(value, (str, PurePath)):
        return _string(str(value))
    if isinstance(value, Mapping):  # a table inside a list of values
        return "{ " + ", ".join(f"{_key(k)} = {_value(v)}" for k, v in value.items() if v is not None) + " }"
    if isinstance(value, Sequence):
        return "[" + ", ".join(_value(v) for v in value) + "]"
    raise TypeError(f"no TOML for {type(value).__name__}: {value!r}")
