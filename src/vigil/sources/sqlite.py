"""The `sqlite` source: a consistent copy via SQLite's online backup API.

The backup API copies a transactionally consistent snapshot while other
processes keep writing. It needs a database file to copy into, so the copy
lands in STATE_DIR/tmp (0600, removed afterwards) and is then compressed and
streamed; row counts per table are taken from that copy for the manifest.
"""

from __future__ import annotations

import os
import sqlite3
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from vigil.errors import Damaged
from vigil.pipeline.reading import ArtifactReader
from vigil.sources.base import OK, PROBLEM, WARNING, ArtifactOutput, Check, Source, check_row_counts

READ = 1 << 20


def table_row_counts(conn: sqlite3.Connection) -> dict[str, int]:
    names = [r[0] for r in conn.execute(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name")]
    return {n: conn.execute(f'SELECT count(*) FROM "{n.replace(chr(34), chr(34) * 2)}"').fetchone()[0] for n in names}


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


class SqliteSource(Source):
    kind = "sqlite"

    def _check(self) -> None:
        # At the source step, not in preflight: a `before` hook may create or mount it.
        path = self.cfg.path
        if not path.is_file():
            raise self.fail(f"database {path} does not exist")
        if not os.access(path, os.R_OK):
            raise self.fail(f"database {path} is not readable")

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "path": str(self.cfg.path)}

    def doctor(self) -> Iterator[Check]:
        # A warning, not a problem: a `before` hook may create or mount it.
        path = self.cfg.path
        if not path.is_file():
            yield Check(WARNING, "database", f"source {self.name}: database {path} does not exist: every run "
                        "fails unless a before hook creates it", "check the path (Laravel: DB_DATABASE)")
        elif not os.access(path, os.R_OK):
            yield Check(PROBLEM, "database", f"source {self.name}: database {path} is not readable",
                        "run vigil as a user that can read it")
        else:
            yield Check(OK, "database", f"source {self.name}: {path} is readable")

    def backup(self, out: ArtifactOutput) -> None:
        self._check()
        tmp_dir = self.ctx.tmp_dir
        assert tmp_dir is not None
        tmp_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd, tmp = tempfile.mkstemp(prefix=f"sqlite-{self.name}-", suffix=".db", dir=tmp_dir)
        os.close(fd)
        try:
            try:
                src = sqlite3.connect(f"file:{self.cfg.path}?mode=ro", uri=True, timeout=60)
                dst = sqlite3.connect(tmp)
                try:
                    # pages=-1: one step, so the copy is one consistent snapshot.
                    src.backup(dst, pages=-1)
                    tables = table_row_counts(dst)
                    integrity = dst.execute("PRAGMA quick_check").fetchone()[0]
                finally:
                    dst.close()
                    src.close()
            except sqlite3.Error as exc:
                raise self.fail(f"cannot copy {self.cfg.path}: {exc}") from None
            if integrity != "ok":
                raise self.fail(f"copy of {self.cfg.path} fails integrity check: {integrity}")
            with out.artifact(f"db-{self.name}.sqlite.zst", "sqlite") as stream, open(tmp, "rb") as fh:
                while chunk := fh.read(READ):
                    stream.write(chunk)
                stream.meta["tables"] = tables
        finally:
            os.unlink(tmp)

    def verify_deep(self, reader: ArtifactReader, related: list[ArtifactReader]) -> None:
        with sqlite_copy(reader, self.tmp_dir) as path:
            conn = sqlite3.connect(path)
            try:
                result = conn.execute("PRAGMA integrity_check").fetchone()[0]
            except sqlite3.Error as exc:
                raise Damaged(f"{reader.where}: not a readable SQLite database: {exc}") from None
            finally:
                conn.close()
        if result != "ok":
            raise Damaged(f"{reader.where}: SQLite integrity check failed: {result}")

    def restore_test(self, reader: ArtifactReader) -> bool:
        with sqlite_copy(reader, self.tmp_dir) as path:
            conn = sqlite3.connect(path)
            try:
                got = table_row_counts(conn)
            except sqlite3.Error as exc:
                raise Damaged(f"{reader.where}: not a readable SQLite database: {exc}") from None
            finally:
                conn.close()
        check_row_counts(reader, got)
        return True
