"""Destinations store artifacts and commit backups (SPEC §4): the contract.

A destination never knows what the bytes are. Each run opens one
`BackupWriter` per destination; a backup is committed by its manifest and is
otherwise invisible: never listed, never restored. tests/contract/ checks every
implementation against what is written here.
"""

from __future__ import annotations

import builtins
from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Protocol

from vigil.errors import Damaged
from vigil.formats.manifest import MANIFEST, Manifest, ManifestError, id_time, is_backup_id, is_plain_name

STATUS = "status.json"  # JOB/status.json: the job's last run, for a fleet view (SPEC §13)


@dataclass
class DamagedBackup:
    """A backup whose manifest does not check out: listed and reported, never used."""

    backup_id: str  # its directory's name, a well-formed backup id
    reason: str
    # An incremental whose own manifest checks out but whose chain is broken: the backups it
    # still needs (for a repair, or a restore by hand), which prune must not delete.
    chain: tuple[str, ...] = ()


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


@dataclass
class Partial:
    """An uncommitted backup (a run that did not finish), with its age in seconds
    (since its last write)."""

    backup_id: str
    age: float


def newest_first(manifests: list[Manifest]) -> list[Manifest]:
    # By the time, not its text: "…T10:00:00+02:00" is older than "…T09:00:00Z".
    return sorted(manifests, key=lambda m: (m.started, m.id), reverse=True)


def plain_path(backup_id: str, name: str | None = None) -> None:
    """Refuse a backup id or file name that could name a place outside the backup."""
    if not is_backup_id(backup_id):
        raise Damaged(f"refusing backup id {backup_id!r}: not a backup id")
    if name is not None and not is_plain_name(name):
        raise Damaged(f"refusing file name {name!r} in backup {backup_id}: not a plain file name")


def artifact_name(backup_id: str, name: str) -> None:
    """What `BackupWriter.open` accepts: a plain file name other than the manifest's."""
    plain_path(backup_id, name)
    if name == MANIFEST:
        raise Damaged(f"refusing artifact name {name!r} in backup {backup_id}: the manifest is written by commit")


def parse_manifest(data: bytes, job: str, backup_id: str) -> Manifest | DamagedBackup:
    try:
        return Manifest.loads(data, expect_id=backup_id, expect_job=job)
    except ManifestError as exc:
        return DamagedBackup(backup_id, f"{MANIFEST}: {exc}")


def newest_id(scans: builtins.list[Scan]) -> str | None:
    """The newest backup, complete or damaged, on any of these destinations. By start time:
    of two ids of one second, the random part says nothing about which came first."""
    keyed = [((m.started.timestamp(), m.id), m.id) for s in scans for m in s.complete]
    keyed += [((id_time(d.backup_id), d.backup_id), d.backup_id) for s in scans for d in s.damaged]
    return max(keyed)[1] if keyed else None


def check_chains(scan: Scan) -> Scan:
    """Move each backup whose chain (SPEC §11) misses a backup, or holds a damaged one,
    from complete to damaged, naming the first broken link."""
    complete = {m.id: m for m in scan.complete}
    damaged = list(scan.damaged)
    broken = {d.backup_id for d in damaged}
    # Oldest first: a backup's chain holds only older ones, already judged.
    for m in sorted(scan.complete, key=lambda m: (m.started, m.id)):
        link = next((c for c in m.chain if c not in complete or c in broken), None)
        if link is not None:
            why = "damaged" if link in broken else "missing"
            damaged.append(DamagedBackup(m.id, f"chain broken: base {link} is {why}", tuple(m.chain)))
            broken.add(m.id)
    if not broken.intersection(complete):
        return scan
    return Scan([m for m in scan.complete if m.id not in broken], damaged)


# The contract. Every method raises only BackupError (TransientError when the
# store may answer later, Damaged for a name or stored thing that does not
# check out): never an OSError or a store client's own exception. Every message
# names the destination. Everything read back is untrusted (SPEC §4).


class Sink(Protocol):
    """Where one artifact's bytes go on one destination."""

    def write(self, data: bytes | memoryview) -> None:
        """Append bytes; BackupError if the store refuses them (a sink that buffers
        may tell only at a later write or at close)."""

    def close(self) -> None:
        """Finish the artifact; BackupError on failure. It is durable at the latest
        when its writer's commit succeeds (a local sink fsyncs in the background)."""

    def abort(self) -> None:
        """Drop what was written; never raises."""


class Reader(Protocol):
    """A stored file opened by `Destination.read`; use it in `with`."""

    def read(self, n: int = -1) -> bytes:
        """Up to n bytes, b"" at the end; BackupError if the store fails mid-way."""

    def __enter__(self) -> Reader: ...

    def __exit__(self, *exc: object) -> None: ...


class BackupWriter(ABC):
    """One backup under construction on one destination. Nothing it writes is
    listed before `commit` succeeds; until then it is a partial."""

    @abstractmethod
    def open(self, name: str) -> Sink:
        """A new artifact file in the uncommitted backup. Damaged for a name that is
        not plain or is the manifest's; BackupError if it cannot be created."""

    @abstractmethod
    def read_back(self, name: str) -> Iterator[bytes]:
        """The stored bytes of a closed artifact, to check them against what was
        sent. Damaged for a name `open` refuses; BackupError (also mid-way) if
        they cannot be read."""

    @abstractmethod
    def commit(self, manifest: bytes) -> None:
        """Make every artifact durable, then write the manifest: its presence commits
        the backup, atomically (listed entirely or not at all). BackupError on failure."""

    @abstractmethod
    def abort(self) -> None:
        """Remove everything this writer created, unless its commit succeeded (a
        committed backup stays). Never raises; may be called again; what it cannot
        remove is left as a partial for prune."""


class Destination(ABC):
    """Where a job's backups are stored: JOB/BACKUP_ID/ with artifacts and a manifest."""

    type: str

    def __init__(self, cfg: Any) -> None:
        self.cfg = cfg
        self.name: str = cfg.name

    @abstractmethod
    def check(self, job: str, need_bytes: int) -> None:
        """Preflight, before `begin`: reachable, writable, room for `need_bytes`
        where the store can tell. BackupError naming what is wrong."""

    @abstractmethod
    def begin(self, job: str, backup_id: str) -> BackupWriter:
        """Start a backup (new ids only: two runs never share one). Damaged for an
        id that is not one, BackupError if the store refuses."""

    @abstractmethod
    def scan_stored(self, job: str) -> Scan:
        """Every backup of the job that has a manifest, each manifest checked
        (`parse_manifest`): the ones that check out, newest first, and the damaged
        ones, reported and never raised. Uncommitted backups are in neither.
        BackupError if the store cannot be listed."""

    def scan(self, job: str) -> Scan:
        """`scan_stored`, where an incremental backup whose chain is not complete here
        counts as damaged too (SPEC §11): it cannot be restored from this destination."""
        return check_chains(self.scan_stored(job))

    def list(self, job: str) -> builtins.list[Manifest]:
        """Committed backups of the job whose manifests check out, newest first."""
        return self.scan(job).complete

    @abstractmethod
    def read(self, job: str, backup_id: str, name: str) -> Reader:
        """Open a stored artifact (or the manifest) for reading. Damaged for an id or
        name that is not plain, and never follows anything out of the backup;
        BackupError if it cannot be opened."""

    @abstractmethod
    def delete(self, job: str, backup_id: str) -> None:
        """Remove a backup: the manifest first, so a half-deleted one is a partial,
        never damaged. Damaged for an id that is not one; a backup that is not
        there is no error; BackupError if the store refuses."""

    @abstractmethod
    def put_status(self, job: str, data: bytes) -> None:
        """Replace `JOB/status.json` (SPEC §13) in one step: a reader sees the old object or the
        new one, never a mix. It is no backup: scan, list and partials never see it.
        BackupError if the store refuses."""

    @abstractmethod
    def partials(self, job: str) -> builtins.list[Partial]:
        """Uncommitted backups (no manifest) and their age: runs that did not
        finish. A damaged backup is not one. BackupError if the store cannot be listed."""

    @abstractmethod
    def delete_partial(self, job: str, backup_id: str) -> None:
        """Remove an uncommitted backup; a committed or damaged one, or none, is left
        as it is. Damaged for an id that is not one; BackupError if the store refuses."""

    def describe(self) -> str:
        return f"{self.type} {self.name}"


def make_destination(cfg: Any, retry: Any = None) -> Destination:
    """The destination for a config table; `retry` ([retry]) for stores with transient errors."""
    if cfg.type == "s3":
        from vigil.destinations.s3 import S3Destination

        return S3Destination(cfg, retry)
    from vigil.destinations.local import LocalDestination

    return LocalDestination(cfg)
