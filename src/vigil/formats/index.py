"""A files archive's index: one JSON line per entry, in the archive's walk order.

Each line holds path, type, size, mode, mtime, sha256, changed_during_read,
uid, gid (and link for links); a regular file also mtime_ns, ctime_ns and ino,
which tell the next incremental backup whether it changed, and `in`: the id of
the backup whose archive holds its bytes (SPEC §11). The writer builds lines by hand (json.dumps of
a dict per entry costs more than the rest of a small file's work); the reader
parses a decompressed chunk at a time, in constant memory, and checks each
entry for the keys verify and restore use. Every malformed input ends in
IndexFormatError.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from json.encoder import encode_basestring, encode_basestring_ascii
from typing import Any

import msgspec

from vigil.formats.tarreader import REGTYPES

# Tar member types as the index names them (REGTYPES are files); anything else is a device.
_KINDS = {**dict.fromkeys(REGTYPES, "file"), b"5": "dir", b"2": "symlink", b"1": "hardlink", b"6": "fifo"}


class IndexFormatError(ValueError):
    """The index is not one vigil wrote: its readers report it as a damaged artifact."""


def kind_of(tar_type: bytes) -> str:
    """The index's name for a tar member type."""
    return _KINDS.get(tar_type, "device")


# --- writing ---------------------------------------------------------------------------


def json_str(text: str) -> str:
    """A JSON string literal. A name holding bytes that are not UTF-8 (decoded with
    surrogateescape) is written with \\u escapes, so that the index stays valid UTF-8."""
    if text.isascii():
        return encode_basestring(text)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return encode_basestring_ascii(text)
    return encode_basestring(text)


def line_parts(path: str, kind: str, size: int, mode: int, mtime: int, changed: bool, uid: int, gid: int,
               link: str = "", ident: tuple[int, int, int] | None = None, in_: str = "") -> tuple[str, str]:
    """An entry's line, split where its sha256 goes: that digest is often known only later.
    `ident` is a file's (mtime_ns, ctime_ns, ino), `in_` the backup holding its bytes."""
    head = f'{{"path": {json_str(path)}, "type": "{kind}", "size": {size}, ' \
           f'"mode": {mode}, "mtime": {mtime}, "sha256": '
    tail = f', "changed_during_read": {"true" if changed else "false"}, "uid": {uid}, "gid": {gid}'
    if link:
        tail += f', "link": {json_str(link)}'
    if ident is not None:
        tail += f', "mtime_ns": {ident[0]}, "ctime_ns": {ident[1]}, "ino": {ident[2]}'
    if in_:
        tail += f', "in": {json_str(in_)}'
    return head, tail + "}\n"


def unchanged(entry: dict[str, Any] | None, size: int, mode: int, uid: int, gid: int,
              ident: tuple[int, int, int]) -> bool:
    """Whether a regular file is the one `entry` (the base's index) describes, by its
    stat alone: path (the caller's lookup), size, mtime_ns, ctime_ns, inode, mode, uid
    and gid. An entry without those keys (an older index), or one that changed while it
    was read, is never unchanged: its stored bytes may not be the file's."""
    return (entry is not None and entry["type"] == "file" and entry.get("changed_during_read") is False
            and type(entry.get("in")) is str and entry["size"] == size and entry.get("mode") == mode
            and entry.get("uid") == uid and entry.get("gid") == gid
            and (entry.get("mtime_ns"), entry.get("ctime_ns"), entry.get("ino")) == ident)


def join_line(head: str, sha: str | None, tail: str) -> bytes:
    """The line of `line_parts`, with its digest (None for entries without content)."""
    return (head + (f'"{sha}"' if sha else "null") + tail).encode("utf-8", "surrogateescape")


# --- reading ---------------------------------------------------------------------------


def held_in(backup_id: str) -> bytes:
    """The text vigil writes into the line of every file whose bytes `backup_id`'s archive holds."""
    return f', "in": "{backup_id}"'.encode()


# Where `iter_index(raw=True)` puts each entry's line as read. No JSON object can hold it there:
# JSON gives str values, never bytes.
RAW = "\x00line"


def iter_index(chunks: Iterable[bytes], only: bytes | None = None, raw: bool = False) -> Iterator[dict[str, Any]]:
    """The index's entries in order, parsed a decompressed chunk at a time (constant memory).
    Each is checked for the keys verify and restore use; IndexFormatError names the first
    that is not. With `only`, lines without that text are passed over unparsed (a reader
    of one archive of a chain wants the few lines `held_in` it). With `raw`, each entry
    also holds its line under RAW: the next backup writes an unchanged file's line as it was."""
    rest = b""
    try:
        for chunk in chunks:
            lines, _, rest = (rest + chunk).rpartition(b"\n")
            if lines and only is not None:
                lines = _lines_with(lines, only)
            if lines:
                # One parse of the chunk's lines as a JSON array: half the time of a call per
                # line. JSON text never holds a raw newline, so joining with commas is exact.
                entries = _decode(b"[" + lines.replace(b"\n", b",") + b"]")
                if raw:
                    for e, line in zip(entries, lines.split(b"\n"), strict=True):
                        _entry(e)[RAW] = line + b"\n"
                    yield from entries
                else:
                    yield from map(_entry, entries)
        if rest.strip() and (only is None or only in rest):
            e = _entry(_decode(rest))
            if raw:
                e[RAW] = rest.strip() + b"\n"
            yield e
    except IndexFormatError:
        raise
    except (ValueError, RecursionError) as exc:
        raise IndexFormatError(str(exc)) from None


def _entry(e: Any) -> dict[str, Any]:
    # Exact types: an index is vigil's own output, and bool is no size.
    if type(e) is not dict or type(e.get("path")) is not str or type(e.get("type")) is not str:
        raise IndexFormatError(f"entry {str(e)[:200]!r} has no path or type")
    if e["type"] == "file" and (type(e.get("size")) is not int or type(e.get("sha256")) is not str):
        raise IndexFormatError(f"file entry {e['path'][:200]!r} has no size or sha256")
    return e


def _lines_with(data: bytes, text: bytes) -> bytes:
    """The lines of `data` that hold `text`, joined. Found by jumping from one occurrence to the
    next (bytes.find): most lines of an index lack the text, and a loop over every line costs
    four times as much."""
    found = []
    at = data.find(text)
    while at != -1:
        start = data.rfind(b"\n", 0, at) + 1
        end = data.find(b"\n", at)
        if end == -1:
            end = len(data)
        found.append(data[start:end])
        at = data.find(text, end)
    return b"\n".join(found)


def _decode(data: bytes) -> Any:
    """JSON text as Python values. msgspec reads vigil's lines several times faster than json;
    what it refuses (a `\\udcXX` escape of a name that is not UTF-8, NaN, a huge number) json
    reads as it always has, so both agree on every index."""
    try:
        return msgspec.json.decode(data)
    except msgspec.DecodeError:
        return json.loads(_text(data))


def _text(data: bytes) -> str:
    # Indexes before vigil escaped them carry non-UTF-8 names as raw bytes;
    # surrogateescape reads those as the tar reader reads the archive's names.
    return data.decode("utf-8", "surrogateescape")


def _walk_key(path: str) -> tuple[str, ...]:
    # The walk visits a directory's entries sorted by name, depth first: that is
    # the order of these tuples ("a" < "a/b" < "a.txt"), which plain strings miss.
    return tuple(path.split("/"))


class IndexCursor:
    """The index, read alongside the archive: both are in walk order, so finding
    a member's entry only ever moves forward, and memory stays flat."""

    def __init__(self, entries: Iterator[dict[str, Any]], keep_missed: bool = False) -> None:
        self._entries = entries
        self._next = next(entries, None)
        self._found = False  # the current entry was returned by seek()
        # Index paths passed over without a member: a damage report for verify; a
        # partial restore passes most of them and keeps none (memory stays flat).
        self.missed: list[str] | None = [] if keep_missed else None

    def _advance(self) -> None:
        assert self._next is not None
        if not self._found and self.missed is not None:
            self.missed.append(self._next["path"])
        self._next, self._found = next(self._entries, None), False

    def seek(self, path: str) -> dict[str, Any] | None:
        """The entry for `path`: None when the index has none, the same entry again
        for a later copy of the path."""
        if self._found and self._next is not None and self._next["path"] != path:
            self._advance()  # usually the next entry is this path: no keys to build
        if self._next is not None and self._next["path"] != path:
            key = _walk_key(path)
            while self._next is not None and _walk_key(self._next["path"]) < key:
                self._advance()
        if self._next is not None and self._next["path"] == path:
            self._found = True
            return self._next
        return None

    def finish(self) -> list[str]:
        """Read the index to its end; the paths no member reached (when kept)."""
        while self._next is not None:
            self._advance()
        return self.missed or []

    def close(self) -> None:
        close = getattr(self._entries, "close", None)
        if close is not None:
            close()
