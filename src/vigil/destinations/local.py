"""A directory on this host (or a mounted disk): JOB/ID/ with a manifest.

A backup is built in JOB/.partial-ID/, every file fsynced, then the manifest
is written and the directory renamed into place and its parent fsynced, so a
power cut leaves either a committed backup or a `.partial-` leftover.
"""

from __future__ import annotations

import errno
import os
import secrets
import shutil
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import BinaryIO

from vigil.destinations.base import (
    STATUS,
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
from vigil.formats.manifest import MANIFEST, MAX_MANIFEST, Manifest, is_backup_id

PARTIAL = ".partial-"
READ = 1 << 20


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


Fail = Callable[[str, OSError], BackupError]


class _Durable(threading.Thread):
    """fsync and close a finished artifact on a thread: it overlaps with the
    read-back of the artifacts (from the page cache either way), and commit
    waits for it before the manifest is written."""

    def __init__(self, fd: int, path: Path) -> None:
        super().__init__(name="vigil-fsync", daemon=True)
        self.fd, self.path = fd, path
        self.error: OSError | None = None

    def run(self) -> None:
        try:
            os.fsync(self.fd)
        except OSError as exc:
            self.error = exc
        finally:
            os.close(self.fd)


class _FileSink:
    def __init__(self, path: Path, fail: Fail, background: list[_Durable] | None = None) -> None:
        self.path = path
        self._fail = fail
        self._background = background  # where close() leaves its fsync; None: fsync before returning
        try:
            self._fd: int | None = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
        except OSError as exc:
            raise fail(f"cannot create {path}", exc) from None

    def write(self, data: bytes | memoryview) -> None:
        if self._fd is None:
            raise self._fail(f"cannot write {self.path}", OSError(errno.EBADF, "already closed"))
        view = memoryview(data)
        try:
            while view:
                n = os.write(self._fd, view)
                view = view[n:]
        except OSError as exc:
            raise self._fail(f"cannot write {self.path}", exc) from None

    def close(self) -> None:
        if self._fd is None:
            return
        fd, self._fd = self._fd, None
        durable = _Durable(fd, self.path)
        if self._background is None:
            durable.run()  # here, on this thread
            if durable.error is not None:
                raise self._fail(f"cannot write {self.path}", durable.error)
        else:
            durable.start()
            self._background.append(durable)

    def abort(self) -> None:
        try:
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None
            # Gone, so that a retried artifact can be written again under its name.
            self.path.unlink(missing_ok=True)
        except OSError:
            pass  # abort never raises; the writer's abort or prune removes what is left


class _File:
    """A stored file opened for reading, its errors told as the destination's."""

    def __init__(self, fh: BinaryIO, path: Path, fail: Fail) -> None:
        self._fh, self._path, self._fail = fh, path, fail

    def read(self, n: int = -1) -> bytes:
        try:
            return self._fh.read(n)
        except OSError as exc:
            raise self._fail(f"cannot read {self._path}", exc) from None

    def close(self) -> None:
        self._fh.close()

    def __enter__(self) -> _File:
        return self

    def __exit__(self, *exc: object) -> None:
        self._fh.close()


class _LocalWriter(BackupWriter):
    def __init__(self, job_dir: Path, backup_id: str, fail: Fail) -> None:
        self.job_dir = job_dir
        self.backup_id = backup_id
        self.final = job_dir / backup_id
        self.partial = job_dir / f"{PARTIAL}{backup_id}"
        self._fail = fail
        self._syncing: list[_Durable] = []
        self._committed = False
        if self.final.exists():
            raise fail(f"cannot create backup directory {self.final}", OSError(errno.EEXIST, "already exists"))
        try:
            self.partial.mkdir(mode=0o700)
        except OSError as exc:
            raise fail(f"cannot create backup directory in {job_dir}", exc) from None

    def open(self, name: str) -> _FileSink:
        artifact_name(self.backup_id, name)
        return _FileSink(self.partial / name, self._fail, self._syncing)

    def read_back(self, name: str) -> Iterator[bytes]:
        artifact_name(self.backup_id, name)
        path = self.partial / name
        try:
            with open(path, "rb") as fh:
                while chunk := fh.read(READ):
                    yield chunk
        except OSError as exc:
            raise self._fail(f"cannot read back {path}", exc) from None

    def commit(self, manifest: bytes) -> None:
        for durable in self._syncing:  # every artifact on disk before the manifest says so
            durable.join()
            if durable.error is not None:
                raise self._fail(f"cannot write {durable.path}", durable.error)
        sink = _FileSink(self.partial / MANIFEST, self._fail)
        sink.write(manifest)
        sink.close()
        try:
            _fsync_dir(self.partial)
            os.rename(self.partial, self.final)
        except OSError as exc:
            raise self._fail(f"cannot commit {self.final}", exc) from None
        self._committed = True
        try:
            _fsync_dir(self.job_dir)
        except OSError as exc:
            raise self._fail(f"cannot commit {self.final}", exc) from None

    def abort(self) -> None:
        for durable in self._syncing:
            durable.join()
        if not self._committed:
            shutil.rmtree(self.partial, ignore_errors=True)


class LocalDestination(Destination):
    type = "local"

    @property
    def root(self) -> Path:
        path: Path = self.cfg.path
        return path

    def _fail(self, message: str) -> BackupError:
        return BackupError(f"destination {self.name}: {message}", f"destination:{self.name}")

    def _os_fail(self, what: str, exc: OSError) -> BackupError:
        return self._fail(f"{what} ({exc.strerror or exc})")

    def check(self, job: str, need_bytes: int) -> None:
        job_dir = self.root / job
        try:
            job_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
            writable = os.access(job_dir, os.W_OK | os.X_OK)
            free = shutil.disk_usage(job_dir).free
        except OSError as exc:
            raise self._os_fail(f"cannot create {job_dir}", exc) from None
        if not writable:
            raise self._fail(f"{job_dir} is not writable")
        if free < need_bytes:
            raise self._fail(
                f"not enough free space in {job_dir}: {free} bytes free, "
                f"{need_bytes} needed (last backup + 20%)"
            )

    def begin(self, job: str, backup_id: str) -> _LocalWriter:
        plain_path(backup_id)
        return _LocalWriter(self.root / job, backup_id, self._os_fail)

    def scan_stored(self, job: str) -> Scan:
        job_dir = self.root / job
        try:
            names = os.listdir(job_dir)
        except FileNotFoundError:
            return Scan([], [])
        except OSError as exc:
            raise self._os_fail(f"cannot list {job_dir}", exc) from None
        complete: list[Manifest] = []
        damaged: list[DamagedBackup] = []
        for name in names:
            if not is_backup_id(name):
                continue
            try:
                with self._open(job, name, MANIFEST) as fh:
                    data = fh.read(MAX_MANIFEST + 1)
            except FileNotFoundError:
                continue  # no manifest: not committed
            except OSError as exc:
                if exc.errno in (errno.ELOOP, errno.ENOTDIR, errno.EISDIR):
                    damaged.append(DamagedBackup(name, f"{MANIFEST}: not a regular file in a plain directory"))
                    continue
                raise self._os_fail(f"cannot read {job_dir / name / MANIFEST}", exc) from None
            found = parse_manifest(data, job, name)
            if isinstance(found, DamagedBackup):
                damaged.append(found)
            else:
                complete.append(found)
        return Scan(newest_first(complete), sorted(damaged, key=lambda d: d.backup_id, reverse=True))

    def _open(self, job: str, backup_id: str, name: str) -> BinaryIO:
        """A file of the backup directory, never through a symlink (the directory's or the file's)."""
        plain_path(backup_id, name)
        dir_fd = os.open(self.root / job / backup_id, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
        try:
            fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=dir_fd)
        finally:
            os.close(dir_fd)
        return os.fdopen(fd, "rb")

    def read(self, job: str, backup_id: str, name: str) -> _File:
        path = self.root / job / backup_id / name
        try:
            return _File(self._open(job, backup_id, name), path, self._os_fail)
        except OSError as exc:
            raise self._os_fail(f"cannot read {path}", exc) from None

    def delete(self, job: str, backup_id: str) -> None:
        plain_path(backup_id)
        path = self.root / job / backup_id
        try:
            (path / MANIFEST).unlink(missing_ok=True)
            _fsync_dir(path)
            shutil.rmtree(path)
        except FileNotFoundError:
            return  # not there: nothing to delete
        except OSError as exc:
            raise self._os_fail(f"cannot delete {path}", exc) from None

    def put_status(self, job: str, data: bytes) -> None:
        job_dir = self.root / job
        tmp = job_dir / f".{STATUS}.{secrets.token_hex(8)}"
        try:
            job_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
            try:
                os.write(fd, data)
                os.fsync(fd)
            finally:
                os.close(fd)
            os.rename(tmp, job_dir / STATUS)  # atomic: the old object or the new one
            _fsync_dir(job_dir)
        except OSError as exc:
            tmp.unlink(missing_ok=True)
            raise self._os_fail(f"cannot write {job_dir / STATUS}", exc) from None

    def partials(self, job: str) -> list[Partial]:
        job_dir = self.root / job
        out = []
        now = time.time()
        try:
            entries = list(os.scandir(job_dir))
        except FileNotFoundError:
            return []
        except OSError as exc:
            raise self._os_fail(f"cannot list {job_dir}", exc) from None
        for entry in entries:
            if entry.name.startswith(PARTIAL) and is_backup_id(entry.name[len(PARTIAL):]):
                backup_id = entry.name[len(PARTIAL):]
            elif is_backup_id(entry.name) and not os.path.lexists(os.path.join(entry.path, MANIFEST)):
                backup_id = entry.name
            else:
                continue
            try:
                out.append(Partial(backup_id, now - entry.stat(follow_symlinks=False).st_mtime))
            except FileNotFoundError:
                continue  # removed meanwhile (a run's abort, a concurrent prune)
            except OSError as exc:
                raise self._os_fail(f"cannot read {entry.path}", exc) from None
        return out

    def delete_partial(self, job: str, backup_id: str) -> None:
        plain_path(backup_id)
        for name in (f"{PARTIAL}{backup_id}", backup_id):
            path = self.root / job / name
            if path.is_dir() and not path.is_symlink() and not os.path.lexists(path / MANIFEST):
                shutil.rmtree(path, ignore_errors=True)

