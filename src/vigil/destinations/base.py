"""Destinations store artifacts and commit backups (SPEC §4).

A destination never knows what the bytes are. Each run opens one
`BackupWriter` per destination; a backup is committed by its manifest and is
otherwise invisible: never listed, never restored.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, BinaryIO, Iterator, Protocol

from vigil.errors import Damaged
from vigil.formats.manifest import MANIFEST, Manifest, ManifestError, is_backup_id, is_plain_name


@dataclass
class DamagedBackup:
    """A backup whose manifest does not check out: listed and reported, never used."""

    backup_id: str  # its directory's name, a well-formed backup id
    reason: str


@dataclass
class Scan:
    """What a destination holds for a job: committed backups (newest first) and damaged ones."""

    complete: list[Manifest]
    damaged: list[DamagedBackup]


# The next backup is about as big as the last one; room for 20 % more leaves it room to grow.
SPACE_MARGIN = 1.2


def space_needed(last_size: int | None) -> int:
    """Free bytes a destination needs for the next backup, from the size of its newest (None: no backup yet)."""
    return int(last_size * SPACE_MARGIN) if last_size is not None else 0


def newest_first(manifests: list[Manifest]) -> list[Manifest]:
    return sorted(manifests, key=lambda m: (m.started_at, m.id), reverse=True)


def plain_path(backup_id: str, name: str | None = None) -> None:
    """Refuse a backup id or file name that could name a place outside the backup."""
    if not is_backup_id(backup_id):
        raise Damaged(f"refusing backup id {backup_id!r}: not a backup id")
    if name is not None and not is_plain_name(name):
        raise Damaged(f"refusing file name {name!r} in backup {backup_id}: not a plain file name")


def parse_manifest(data: bytes, job: str, backup_id: str) -> Manifest | DamagedBackup:
    try:
        return Manifest.loads(data, expect_id=backup_id, expect_job=job)
    except ManifestError as exc:
        return DamagedBackup(backup_id, f"{MANIFEST}: {exc}")


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
    def scan(self, job: str) -> Scan:
        """Every backup of the job with a manifest, each manifest checked (Manifest.loads)."""

    def list(self, job: str) -> list[Manifest]:
        """Committed backups of the job whose manifests check out, newest first."""
        return self.scan(job).complete

    @abstractmethod
    def read(self, job: str, backup_id: str, name: str) -> BinaryIO:
        """Open a stored artifact (or the manifest) for reading; Damaged for a name that is not plain."""

    @abstractmethod
    def delete(self, job: str, backup_id: str) -> None:
        """Remove a backup: the manifest first, so a half-deleted one is incomplete, not damaged.
        Damaged for a backup id that is not one."""

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
