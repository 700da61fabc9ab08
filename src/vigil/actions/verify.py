"""`vigil verify`: is a stored backup intact, readable, and does it restore?

Default: manifest present, every artifact present with its size and SHA-256.
--deep: decompress everything; walk each tar against its index (per-file
SHA-256), open SQLite copies, check SQL dump footers, read custom dumps to
the end with pg_restore. --restore-test: load each database dump into a
scratch database and compare row counts with those recorded at backup time.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import secrets
import sqlite3
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

from vigil.config.schema import Job
from vigil.pipeline.crypto import decryptor
from vigil.destinations.base import Destination, make_destination
from vigil.errors import BackupError, ConfigError, Damaged
from vigil.formats.manifest import Manifest
from vigil.pipeline.progress import NO_PROGRESS, Meter
from vigil.pipeline.reading import ArtifactReader
from vigil.sources.db.process import database_client
from vigil.sources.sqlite import table_row_counts
from vigil.formats.tarreader import REGTYPES, TarFormatError, TarStream

DB_TYPES = ("postgres", "mysql", "sqlite")
# Tar member types as the index names them (REGTYPES are files); anything else is a device.
_KINDS = {**dict.fromkeys(REGTYPES, "file"), b"5": "dir", b"2": "symlink", b"1": "hardlink", b"6": "fifo"}


def iter_index(reader: ArtifactReader) -> Iterator[dict[str, Any]]:
    """The index's entries in order, parsed a decompressed chunk at a time (constant memory).
    Each is checked for the keys verify and restore use; Damaged names the first that is not."""
    chunks = reader.plain()
    rest = b""
    try:
        for chunk in chunks:
            lines, _, rest = (rest + chunk).rpartition(b"\n")
            if lines:
                # One parse of the chunk's lines as a JSON array: half the time of a call per
                # line. JSON text never holds a raw newline, so joining with commas is exact.
                yield from map(_entry, json.loads(_text(b"[" + lines.replace(b"\n", b",") + b"]")))
        if rest.strip():
            yield _entry(json.loads(_text(rest)))
    except (ValueError, RecursionError, _BadEntry) as exc:
        for _ in chunks:  # the stored bytes first: a damaged artifact says ChecksumError
            pass
        raise Damaged(f"{reader.where}: unreadable index: {exc}") from None


class _BadEntry(Exception):
    pass


def _entry(e: Any) -> dict[str, Any]:
    # Exact types: an index is vigil's own output, and bool is no size.
    if type(e) is not dict or type(e.get("path")) is not str or type(e.get("type")) is not str:
        raise _BadEntry(f"entry {str(e)[:200]!r} has no path or type")
    if e["type"] == "file" and (type(e.get("size")) is not int or type(e.get("sha256")) is not str):
        raise _BadEntry(f"file entry {e['path'][:200]!r} has no size or sha256")
    return e


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


@dataclass
class Report:
    checked: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    # (destination, backup id, its problems) for each copy checked: what the journal records
    copies: list[tuple[str, str, list[str]]] = field(default_factory=list)


@contextmanager
def sqlite_copy(reader: ArtifactReader, tmp_dir: Path) -> Iterator[str]:
    """The stored SQLite database as a temporary file (0600, removed afterwards)."""
    tmp_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd, name = tempfile.mkstemp(prefix="verify-", suffix=".sqlite", dir=tmp_dir)
    try:
        with os.fdopen(fd, "wb") as fh:
            for chunk in reader.plain():
                fh.write(chunk)
        yield name
    finally:
        os.unlink(name)


class Verifier:
    def __init__(self, job: Job, log: logging.Logger, meter: Meter = NO_PROGRESS) -> None:
        self.job = job
        self.log = log
        self.meter = meter
        self.tmp_dir = job.state_dir / "tmp"

    def _locate(self, backup_id: str) -> tuple[list[tuple[Destination, Manifest]], list[str]]:
        """The backup on every destination that has it (`latest`: the newest stored, damaged
        or not), and a line for each copy whose manifest does not check out."""
        scans = [(dest, dest.scan(self.job.name)) for dest in map(make_destination, self.job.destination)]
        if backup_id == "latest":
            ids = [m.id for _, s in scans for m in s.complete] + [d.backup_id for _, s in scans for d in s.damaged]
            backup_id = max(ids, default="")
        found = [(dest, m) for dest, s in scans for m in s.complete if m.id == backup_id]
        damaged = [f"{dest.name}:{self.job.name}/{d.backup_id}: damaged backup: {d.reason}"
                   for dest, s in scans for d in s.damaged if d.backup_id == backup_id]
        return found, damaged

    def verify(self, backup_id: str, deep: bool, restore_test: bool) -> Report:
        found, damaged = self._locate(backup_id)
        if not found and not damaged:
            if backup_id != "latest":
                raise ConfigError(f"job {self.job.name}: no complete backup {backup_id!r} on any destination")
            return Report(problems=[f"job {self.job.name}: no complete backup on any destination"])
        report = Report(problems=damaged)
        if not found:
            return report
        decrypt = decryptor(self.job)
        for dest, manifest in found:
            report.copies.append((dest.name, manifest.id, []))
            files_sources = {a.source for a in manifest.artifacts if a.type == "files"}
            index_of: dict[str, ArtifactReader] = {
                a.source: ArtifactReader(dest, manifest, a, decrypt, self.meter) for a in manifest.artifacts if a.type == "index"}
            for art in manifest.artifacts:
                reader = ArtifactReader(dest, manifest, art, decrypt, self.meter)
                try:
                    if not deep:
                        reader.check()
                    elif art.type == "files":
                        self._deep_files(reader, index_of.get(art.source))
                    elif art.type == "index" and art.source in files_sources:
                        reader.check()  # parsed, and so checked, with its archive
                    else:
                        self._deep_db(reader)
                    report.checked.append(reader.where)
                except BackupError as exc:
                    report.problems.append(str(exc))
                    report.copies[-1][2].append(str(exc))
        if restore_test:
            dest, manifest = found[0]
            for art in manifest.artifacts:
                if art.type in DB_TYPES:
                    try:
                        self._restore_test(ArtifactReader(dest, manifest, art, decrypt, self.meter))
                        report.checked.append(f"{dest.name}:{manifest.id}/{art.name} (restore test)")
                    except BackupError as exc:
                        report.problems.append(str(exc))
                        report.copies[0][2].append(str(exc))
        return report

    def _deep_files(self, reader: ArtifactReader, index_reader: ArtifactReader | None) -> None:
        if index_reader is None:
            raise BackupError(f"{reader.where}: no index artifact for source {reader.art.source}")
        # Archive and index are both written in walk order, so they are compared
        # side by side, like a merge: memory stays flat however many files.
        cursor = IndexCursor(iter_index(index_reader), keep_missed=True)
        bad: list[str] = []

        def check(path: str, kind: str, size: int, sha: str | None) -> None:
            entry = cursor.seek(path)
            if entry is None:
                bad.append(f"{path}: in the archive but not in the index")
            elif entry["type"] == "file" and (kind, size, sha) != ("file", entry["size"], entry["sha256"]):
                bad.append(f"{path}: content differs from the index")

        try:
            with reader.stream() as stream:
                tar = TarStream(stream)
                last: tuple[str, str, int, str | None] | None = None
                try:
                    for m in tar:
                        m.check()  # what a restore would refuse, a deep verify reports
                        sha = None
                        kind = _KINDS.get(m.type, "device")
                        if kind == "file":
                            h = hashlib.sha256()
                            for chunk in tar.content():
                                h.update(chunk)
                            sha = h.hexdigest()
                        path = m.name.rstrip("/")
                        if last is not None and last[0] != path:
                            check(*last)
                        last = (path, kind, m.size, sha)  # a later copy of a file (re-read) supersedes
                except TarFormatError as exc:
                    raise Damaged(f"{reader.where}: not a readable tar archive: {exc}") from None
            if last is not None:
                check(*last)
            bad.extend(f"{p}: missing from the archive" for p in cursor.finish())
        finally:
            cursor.close()
        if bad:
            raise Damaged(f"{reader.where}: {len(bad)} damaged entries: " + "; ".join(bad[:10]))

    def _deep_db(self, reader: ArtifactReader) -> None:
        art = reader.art
        if art.type == "sqlite":
            with sqlite_copy(reader, self.tmp_dir) as path:
                conn = sqlite3.connect(path)
                try:
                    result = conn.execute("PRAGMA integrity_check").fetchone()[0]
                except sqlite3.Error as exc:
                    raise BackupError(f"{reader.where}: not a readable SQLite database: {exc}") from None
                finally:
                    conn.close()
                if result != "ok":
                    raise BackupError(f"{reader.where}: SQLite integrity check failed: {result}")
        elif art.type == "mysql":
            from vigil.sources.db.mysql import footer_ok

            tail = b""
            for chunk in reader.plain():
                tail = (tail + chunk)[-512:]
            if not footer_ok(tail):
                raise BackupError(f"{reader.where}: SQL dump is truncated (no '-- Dump completed' footer)")
        elif art.type == "postgres":
            engine = database_client(self.job, self.job.source_named(art.source), self.tmp_dir)
            engine.read_to_end(reader.plain())
        else:
            reader.check()

    def _restore_test(self, reader: ArtifactReader) -> None:
        art = reader.art
        want = art.tables or {}
        if art.type == "sqlite":
            with sqlite_copy(reader, self.tmp_dir) as path:
                conn = sqlite3.connect(path)
                try:
                    got = table_row_counts(conn)
                finally:
                    conn.close()
        else:
            engine = database_client(self.job, self.job.source_named(art.source), self.tmp_dir)
            scratch = f"vigil_restoretest_{secrets.token_hex(4)}"
            self.log.info("restore test of %s into scratch database %s", reader.where, scratch)
            try:
                engine.create_database(scratch, force=False)
                engine.load(scratch, reader.plain(), scratch=True)
                got = engine.row_counts(scratch)
            finally:
                try:
                    engine.drop_database(scratch)
                except BackupError as exc:
                    self.log.error("could not drop scratch database %s: %s", scratch, exc)
        diffs = [f"table {t}: {got.get(t)} rows restored, {n} at backup time"
                 for t, n in sorted(want.items()) if got.get(t) != n]
        diffs += [f"table {t}: restored but not in the manifest" for t in sorted(got.keys() - want.keys())]
        if diffs:
            raise BackupError(f"{reader.where}: restore test failed: " + "; ".join(diffs))
