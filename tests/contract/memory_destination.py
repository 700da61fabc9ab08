"""A destination held in memory: the contract of vigil.destinations.base in its
smallest complete form. It shows the contract can be met without a disk or a
store, and other contract tests use it as a destination that is always there."""

from __future__ import annotations

import io
import threading
import time
from collections.abc import Iterator
from types import SimpleNamespace

from vigil.destinations.base import (
    BackupWriter,
    DamagedBackup,
    Destination,
    Partial,
    Scan,
    artifact_name,
    newest_first,
    parse_manifest,
    plain_path,
)
from vigil.errors import BackupError
from vigil.formats.manifest import MANIFEST

CHUNK = 1 << 16


class _Backup:
    """One backup's files; committed once it holds a manifest."""

    def __init__(self) -> None:
        self.files: dict[str, bytearray] = {}
        self.touched = time.time()

    @property
    def committed(self) -> bool:
        return MANIFEST in self.files


class _Sink:
    def __init__(self, dest: MemoryDestination, backup: _Backup, name: str) -> None:
        self.dest, self.backup, self.name = dest, backup, name
        self.closed = False
        backup.files[name] = bytearray()

    def write(self, data: bytes | memoryview) -> None:
        self.dest.ensure_up()
        if self.closed:
            raise self.dest.fail(f"{self.name}: already closed")
        with self.dest.lock:
            self.backup.files[self.name] += data
            self.backup.touched = time.time()

    def close(self) -> None:
        self.dest.ensure_up()
        self.closed = True

    def abort(self) -> None:
        with self.dest.lock:
            if not self.backup.committed:
                self.backup.files.pop(self.name, None)


class _Writer(BackupWriter):
    sink_class = _Sink

    def __init__(self, dest: MemoryDestination, job: str, backup_id: str) -> None:
        self.dest, self.job, self.backup_id = dest, job, backup_id
        self.backup = _Backup()
        self.committed = False

    def open(self, name: str) -> _Sink:
        artifact_name(self.backup_id, name)
        self.dest.ensure_up()
        if name in self.backup.files:
            raise self.dest.fail(f"{self.backup_id}/{name} exists")
        return self.sink_class(self.dest, self.backup, name)

    def read_back(self, name: str) -> Iterator[bytes]:
        artifact_name(self.backup_id, name)
        self.dest.ensure_up()
        data = self.backup.files.get(name)
        if data is None:
            raise self.dest.fail(f"{self.backup_id}/{name}: no such artifact")
        for at in range(0, len(data), CHUNK):
            yield bytes(data[at:at + CHUNK])

    def commit(self, manifest: bytes) -> None:
        self.dest.ensure_up()
        if self.dest.backups.get((self.job, self.backup_id)) is not self.backup:
            raise self.dest.fail(f"{self.backup_id}: removed before its commit")
        with self.dest.lock:
            self.backup.files[MANIFEST] = bytearray(manifest)
        self.committed = True

    def abort(self) -> None:
        if not self.committed:
            with self.dest.lock:
                if self.dest.backups.get((self.job, self.backup_id)) is self.backup:
                    del self.dest.backups[(self.job, self.backup_id)]


class MemoryDestination(Destination):
    type = "memory"
    writer_class = _Writer

    def __init__(self, name: str = "memory") -> None:
        super().__init__(SimpleNamespace(name=name))
        self.backups: dict[tuple[str, str], _Backup] = {}
        self.lock = threading.Lock()  # a fan-out writes from its own thread
        self.down = False  # a store that cannot be reached: every call fails
        self.status: dict[str, bytes] = {}

    def fail(self, message: str) -> BackupError:
        return BackupError(f"destination {self.name}: {message}", f"destination:{self.name}")

    def ensure_up(self) -> None:
        if self.down:
            raise self.fail("unreachable")

    def check(self, job: str, need_bytes: int) -> None:
        self.ensure_up()

    def begin(self, job: str, backup_id: str) -> _Writer:
        plain_path(backup_id)
        self.ensure_up()
        if (job, backup_id) in self.backups:
            raise self.fail(f"backup {backup_id} exists")
        writer = self.writer_class(self, job, backup_id)
        self.backups[(job, backup_id)] = writer.backup
        return writer

    def _of(self, job: str) -> dict[str, _Backup]:
        self.ensure_up()
        with self.lock:
            return {i: b for (j, i), b in self.backups.items() if j == job}

    def scan_stored(self, job: str) -> Scan:
        complete, damaged = [], []
        for backup_id, backup in self._of(job).items():
            if backup.committed:
                found = parse_manifest(bytes(backup.files[MANIFEST]), job, backup_id)
                (damaged if isinstance(found, DamagedBackup) else complete).append(found)
        return Scan(newest_first(complete), sorted(damaged, key=lambda d: d.backup_id, reverse=True))

    def read(self, job: str, backup_id: str, name: str) -> io.BytesIO:
        plain_path(backup_id, name)
        backup = self._of(job).get(backup_id)
        if backup is None or name not in backup.files:
            raise self.fail(f"cannot read {job}/{backup_id}/{name}: not there")
        return io.BytesIO(bytes(backup.files[name]))

    def delete(self, job: str, backup_id: str) -> None:
        plain_path(backup_id)
        self.ensure_up()
        with self.lock:
            self.backups.pop((job, backup_id), None)

    def put_status(self, job: str, data: bytes) -> None:
        self.ensure_up()
        self.status[job] = bytes(data)

    def partials(self, job: str) -> list[Partial]:
        now = time.time()
        return [Partial(i, now - b.touched) for i, b in self._of(job).items() if not b.committed]

    def delete_partial(self, job: str, backup_id: str) -> None:
        plain_path(backup_id)
        self.ensure_up()
        with self.lock:
            backup = self.backups.get((job, backup_id))
            if backup is not None and not backup.committed:
                del self.backups[(job, backup_id)]
