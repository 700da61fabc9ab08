"""Sources turn something on the server into artifact streams (SPEC §3.5).

A source never knows where its bytes go: it asks `ArtifactOutput.artifact()`
for a writable stream per artifact and writes raw bytes into it.
"""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from vigil.config.schema import Job
from vigil.errors import BackupError
from vigil.logs import printable
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


class Source(ABC):
    """Base of every source type; `cfg` is the validated config table."""

    def __init__(self, cfg: Any, ctx: SourceContext) -> None:
        self.cfg = cfg
        self.ctx = ctx
        self.name: str = cfg.name
        self.warnings: list[str] = []

    def preflight(self) -> None:
        """Fail early (BackupError) when the source cannot work at all."""

    @abstractmethod
    def backup(self, out: ArtifactOutput) -> None:
        """Write this source's artifacts; warnings go through `warn`."""

    def describe(self) -> dict[str, Any]:
        """What goes into the manifest's `sources` list."""
        return {"name": self.name, "type": self.cfg.type}

    @property
    def label(self) -> str:
        return f"{self.cfg.type} source {self.name}"

    def fail(self, message: str) -> BackupError:
        """The error that fails the run at this source's step."""
        return BackupError(printable(f"{self.label}: {message}"), f"source:{self.name}")

    def warn(self, message: str) -> None:
        text = printable(f"{self.label}: {message}")
        self.warnings.append(text)
        self.ctx.log.warning(text)


# Imported on demand: each kind pulls in its own tools, and a run of a files
# job should not pay start-up time for the database ones.
_KINDS = {"files": ("vigil.sources.files", "FilesSource"), "sqlite": ("vigil.sources.sqlite", "SqliteSource"),
          "postgres": ("vigil.sources.db.postgres", "PostgresSource"), "mysql": ("vigil.sources.db.mysql", "MysqlSource")}


def make_source(cfg: Any, ctx: SourceContext) -> Source:
    import importlib

    module, name = _KINDS[cfg.type]
    kind: type[Source] = getattr(importlib.import_module(module), name)
    return kind(cfg, ctx)
