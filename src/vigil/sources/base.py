"""Sources turn something on the server into artifact streams (SPEC §3.5), and read them back.

A source owns its whole lifecycle: `backup` writes its artifacts, `verify_deep`
checks what a stored one holds, `restore_test` loads a dump into a scratch
database, `restore_to` restores one backup's artifacts into a target, and
`doctor` checks that it can work at all. A source never knows where its bytes
go: it asks `ArtifactOutput.artifact()` for a writable stream per artifact and
writes raw bytes into it; what it reads back comes through an ArtifactReader,
which compares the stored bytes with the manifest.

Errors: ConfigError for settings or a target the source cannot use; Damaged
when a stored artifact does not check out (another destination's copy may);
BackupError for everything else that fails.
"""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from collections.abc import Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, NamedTuple, Protocol

from vigil.config.schema import Job
from vigil.errors import BackupError, ConfigError
from vigil.logs import printable
from vigil.pipeline.reading import ArtifactReader
from vigil.pipeline.stream import ArtifactStream


class ArtifactOutput(Protocol):
    def artifact(self, name: str, type_: str, *, threads: int = -1) -> AbstractContextManager[ArtifactStream]:
        """A stream for one artifact; committed on clean exit, dropped on error."""


@dataclass
class SourceContext:
    job: Job
    log: logging.Logger
    # (st_dev, st_ino) of directories never to archive: destinations and the
    # state dir when they lie inside a source tree.
    skip_dirs: set[tuple[int, int]] = field(default_factory=set)
    tmp_dir: Path | None = None
    backup_id: str = ""  # the backup being written
    # files source name -> the base's index (a checked cache file): an incremental backup
    base_indexes: dict[str, Path] = field(default_factory=dict)
    base_chain: frozenset[str] = frozenset()  # the base and its chain: what an index's `in` may name


@dataclass
class RestoreTarget:
    """Where a restore goes: exactly one of directory, database, file."""

    directory: Path | None = None
    database: str | None = None
    file: Path | None = None
    include: list[str] = field(default_factory=list)  # gitignore-style patterns (files only)
    force: bool = False  # restore into a non-empty target


@dataclass
class Restored:
    """What one restore wrote."""

    entries: int = 0
    bytes: int = 0
    skipped: list[str] = field(default_factory=list)


OK, WARNING, PROBLEM = "OK", "WARNING", "PROBLEM"


class Check(NamedTuple):
    """One doctor finding about a source."""

    level: str  # OK | WARNING | PROBLEM
    check: str
    message: str
    fix: str = ""


class Source(ABC):
    """Base of every source type; `cfg` is the validated config table, or None for a
    source known only from a stored backup (renamed, removed or retyped in the job
    since): it reads back what needs no settings, and says so for what does."""

    kind: ClassVar[str]  # the type in the job file; also the type of its main artifacts

    def __init__(self, cfg: Any, ctx: SourceContext, name: str | None = None) -> None:
        self.cfg = cfg
        self.ctx = ctx
        self.name: str = cfg.name if cfg is not None else str(name)
        self.warnings: list[str] = []

    # --- producing -----------------------------------------------------------------

    def preflight(self) -> None:  # noqa: B027 - optional: most sources have nothing to check early
        """Fail early (BackupError) when the source cannot work at all."""

    @abstractmethod
    def backup(self, out: ArtifactOutput) -> None:
        """Write this source's artifacts; warnings go through `warn`."""

    def describe(self) -> dict[str, Any]:
        """What goes into the manifest's `sources` list."""
        return {"name": self.name, "type": self.kind}

    @property
    def label(self) -> str:
        return f"{self.kind} source {self.name}"

    def fail(self, message: str) -> BackupError:
        """The error that fails the run at this source's step."""
        return BackupError(printable(f"{self.label}: {message}"), f"source:{self.name}")

    def warn(self, message: str) -> None:
        text = printable(f"{self.label}: {message}")
        self.warnings.append(text)
        self.ctx.log.warning(text)

    def settings(self) -> Any:
        """The job's table for this source; ConfigError when the job no longer has it."""
        if self.cfg is not None:
            return self.cfg
        job = self.ctx.job
        cfg = job.source_named(self.name)  # ConfigError naming the job's sources
        raise ConfigError(f"{job.config_path}: source {self.name!r} is a {cfg.type} source now; "
                          f"this backup holds a {self.kind} source of that name")

    @property
    def tmp_dir(self) -> Path:
        return self.ctx.tmp_dir or self.ctx.job.state_dir / "tmp"

    # --- reading back ----------------------------------------------------------------

    def verify_deep(self, reader: ArtifactReader, related: list[ArtifactReader]) -> None:
        """Read one stored artifact of this source to its end and check what it holds;
        `related` are all of this source's artifacts in the same backup. Damaged when
        it does not check out. The default: size and SHA-256 against the manifest."""
        reader.check()

    def restore_test(self, reader: ArtifactReader) -> bool:
        """Load the artifact into a scratch database and compare table row counts with
        the manifest's (BackupError naming the tables that differ). False when this
        artifact holds nothing to load."""
        return False

    def restore_to(self, readers: list[ArtifactReader], target: RestoreTarget) -> Restored:
        """Restore this source's artifacts of one backup (`readers`, all of them) into
        `target`. The default: the one artifact, as stored, into a file."""
        from vigil.sources.restore_file import restore_file

        main = self.main_artifact(readers)
        if target.file is not None:
            return restore_file(main, target.file, target.force)
        if target.database is not None:
            raise ConfigError(f"source {self.name} is a {self.kind} source: restore it with --to-file FILE")
        raise ConfigError(f"source {self.name} is a {self.kind} source: use --to-database or --to-file")

    def main_artifact(self, readers: list[ArtifactReader]) -> ArtifactReader:
        """The first artifact of this source's own type; ConfigError when the backup has none."""
        for reader in readers:
            if reader.art.type == self.kind:
                return reader
        backup = readers[0].manifest.id if readers else "?"
        raise ConfigError(f"backup {backup} holds nothing of source {self.name!r}")

    def doctor(self) -> Iterator[Check]:
        """What `vigil doctor` says about this source: tools, connection."""
        return iter(())


def check_row_counts(reader: ArtifactReader, got: dict[str, int]) -> None:
    """A restore test's verdict: the tables restored from `reader` hold the rows the manifest recorded."""
    want = reader.art.tables or {}
    diffs = [f"table {t}: {got.get(t)} rows restored, {n} at backup time"
             for t, n in sorted(want.items()) if got.get(t) != n]
    diffs += [f"table {t}: restored but not in the manifest" for t in sorted(got.keys() - want.keys())]
    if diffs:
        raise BackupError(f"{reader.where}: restore test failed: " + "; ".join(diffs))


class StoredArtifact(Source):
    """An artifact of a type no source reads back (a newer vigil's, or a damaged
    manifest's): checked against the manifest and restored to a file as stored."""

    def __init__(self, cfg: Any, ctx: SourceContext, name: str | None = None, kind: str = "") -> None:
        super().__init__(cfg, ctx, name)
        self.kind = kind  # type: ignore[misc]

    def backup(self, out: ArtifactOutput) -> None:
        raise self.fail("a stored artifact's type, not a source type")


# Imported on demand: each kind pulls in its own tools, and a run of a files
# job should not pay start-up time for the database ones.
_KINDS = {"files": ("vigil.sources.files", "FilesSource"), "sqlite": ("vigil.sources.sqlite", "SqliteSource"),
          "postgres": ("vigil.sources.db.postgres", "PostgresSource"),
          "mysql": ("vigil.sources.db.mysql", "MysqlSource")}
# The source type that reads back each artifact type a source writes.
_READ_BY = {"files": "files", "index": "files", "sqlite": "sqlite", "postgres": "postgres", "mysql": "mysql"}


def _kind(type_: str) -> type[Source]:
    import importlib

    module, name = _KINDS[type_]
    kind: type[Source] = getattr(importlib.import_module(module), name)
    return kind


def make_source(cfg: Any, ctx: SourceContext) -> Source:
    return _kind(cfg.type)(cfg, ctx)


def source_for(name: str, artifact_type: str, ctx: SourceContext) -> Source:
    """The source that reads back a stored artifact of source `name`: the job's source of
    that name when it is of the kind that wrote the artifact; otherwise one of that kind
    without settings, which checks and restores what needs none."""
    kind = _READ_BY.get(artifact_type)
    if kind is None:
        return StoredArtifact(None, ctx, name, artifact_type)
    cfg = next((s for s in ctx.job.source if s.name == name and s.type == kind), None)
    return _kind(kind)(cfg, ctx, name)
