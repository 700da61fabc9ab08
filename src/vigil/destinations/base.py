"""Destinations store artifacts and commit backups (SPEC §4).

A destination never knows what the bytes are. Each run opens one
`BackupWriter` per destination; a backup is committed by its manifest and is
otherwise invisible: never listed, never restored.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, BinaryIO, Iterator, Protocol

from vigil.formats.manifest import Manifest


@dataclass
class Listed:
    """A committed backup as found on a destination."""

    destination: str
    manifest: Manifest


@dataclass
class Partial:
    """An uncommitted backup (a run that did not finish), with its age in seconds."""

    backup_id: str
    age: float


class Sink(Protocol):
    """Where one artifact's bytes go on one destination."""

    def write(self, data: bytes | memoryview) -> None: ...

    def close(self) -> None:
        """Finish the artifact; raise on failure. It is durable at the latest when
        its writer's commit succeeds (a local sink fsyncs in the background)."""

    def abort(self) -> None:
        """Drop what was written; never raises."""


class BackupWriter(ABC):
    @abstractmethod
    def open(self, name: str) -> Sink:
        """A new artifact file in the (uncommitted) backup."""

    @abstractmethod
    def read_back(self, name: str) -> Iterator[bytes]:
        """The stored bytes of an artifact, to check them against what was sent."""

    @abstractmethod
    def commit(self, manifest: bytes) -> None:
        """Write the manifest last; its presence commits the backup."""

    @abstractmethod
    def abort(self) -> None:
        """Remove everything this writer created; never raises."""


class Destination(ABC):
    type: str

    def __init__(self, cfg: Any) -> None:
        self.cfg = cfg
        self.name: str = cfg.name

    @abstractmethod
    def check(self, job: str, need_bytes: int) -> None:
        """Preflight: reachable, writable, room for `need_bytes`; raise BackupError."""

    @abstractmethod
    def begin(self, job: str, backup_id: str) -> BackupWriter: ...

    @abstractmethod
    def list(self, job: str) -> list[Manifest]:
        """Committed backups of the job, newest first."""

    @abstractmethod
    def read(self, job: str, backup_id: str, name: str) -> BinaryIO:
        """Open a stored artifact (or the manifest) for reading."""

    @abstractmethod
    def delete(self, job: str, backup_id: str) -> None:
        """Remove a backup: the manifest first, so a half-deleted one is incomplete, not damaged."""

    @abstractmethod
    def partials(self, job: str) -> list[Partial]: ...

    @abstractmethod
    def delete_partial(self, job: str, backup_id: str) -> None: ...

    def describe(self) -> str:
        return f"{self.type} {self.name}"


def make_destination(cfg: Any, retry: Any = None) -> Destination:
    """The destination for a config table; `retry` ([retry]) for stores with transient errors."""
    if cfg.type == "s3":
        from vigil.destinations.s3 import S3Destination

        return S3Destination(cfg, retry)
    from vigil.destinations.local import LocalDestination

    return LocalDestination(cfg)
