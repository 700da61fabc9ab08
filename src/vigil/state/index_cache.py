"""The local copy of each backup's file index: what the next incremental backup compares with (SPEC §11).

STATE_DIR/index-cache/JOB/BACKUP_ID/index-SOURCE.jsonl.zst holds the index's
JSON lines, zstd-compressed and never encrypted, so that a job encrypted to
public keys alone can still back up incrementally. A run writes it under
`.partial-BACKUP_ID` beside the index it sends to the destinations, renames it
when the backup commits and then drops the job's older copies. Nothing here is
trusted by itself: before a cached index is used, its content is compared with
the `content_sha256` the manifest records for that index.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from collections.abc import Iterator
from contextlib import suppress
from pathlib import Path
from typing import Any, BinaryIO

import zstandard

from vigil.formats.index import iter_index

READ = 1 << 20
BATCH = 1 << 18  # lines arrive one at a time: hashed and compressed in batches, a call per line costs more
_NEW = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC


def job_dir(state_dir: Path, job: str) -> Path:
    return state_dir / "index-cache" / job


def _file(state_dir: Path, job: str, dirname: str, source: str) -> Path:
    return job_dir(state_dir, job) / dirname / f"index-{source}.jsonl.zst"


class CacheWriter:
    """Writes one index's plain lines into the cache; `close` returns their SHA-256, which
    the manifest records. A cache that cannot be written costs the next run its local base
    (`error` says why), never this backup: the lines are still hashed."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.error: str | None = None
        # One zstd worker: compressing beside the walk, not in its way.
        self._zstd = zstandard.ZstdCompressor(level=3, threads=1).compressobj()
        self._sha = hashlib.sha256()
        self._batch: list[bytes] = []
        self._batched = 0
        self._fh: BinaryIO | None = None
        try:
            path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            path.unlink(missing_ok=True)
            self._fh = os.fdopen(os.open(path, _NEW, 0o600), "wb")
        except OSError as exc:
            self._failed(exc)

    def _failed(self, exc: OSError) -> None:
        self.error = f"cannot write {self.path}: {exc.strerror or exc}"
        self.abort()

    def write(self, data: bytes) -> None:
        self._batch.append(data)
        self._batched += len(data)
        if self._batched >= BATCH:
            self._flush()

    def _flush(self) -> None:
        data = b"".join(self._batch)
        self._batch.clear()
        self._batched = 0
        self._sha.update(data)
        if self._fh is not None:
            try:
                self._fh.write(self._zstd.compress(data))
            except OSError as exc:
                self._failed(exc)

    def close(self) -> str:
        self._flush()
        if self._fh is not None:
            try:
                self._fh.write(self._zstd.flush())
                self._fh.close()
                self._fh = None
            except OSError as exc:
                self._failed(exc)
        return self._sha.hexdigest()

    def abort(self) -> None:
        if self._fh is not None:
            with suppress(OSError):
                self._fh.close()
            self._fh = None
        with suppress(OSError):
            self.path.unlink()


def writer(state_dir: Path, job: str, backup_id: str, source: str) -> CacheWriter:
    """The cache file of a backup under construction."""
    return CacheWriter(_file(state_dir, job, f".partial-{backup_id}", source))


def commit(state_dir: Path, job: str, backup_id: str) -> None:
    """The backup committed: its indexes become the job's cache, the older ones go."""
    top = job_dir(state_dir, job)
    partial = top / f".partial-{backup_id}"
    if partial.is_dir():
        partial.rename(top / backup_id)
    for entry in os.scandir(top):
        if entry.name != backup_id:
            shutil.rmtree(entry.path, ignore_errors=True)


def discard(state_dir: Path, job: str, backup_id: str) -> None:
    """The backup did not commit: its cache files go."""
    shutil.rmtree(job_dir(state_dir, job) / f".partial-{backup_id}", ignore_errors=True)


def store_path(state_dir: Path, job: str, backup_id: str, source: str) -> Path:
    """Where a committed backup's index is cached (also for one fetched from a destination)."""
    return _file(state_dir, job, backup_id, source)


def lookup(state_dir: Path, job: str, backup_id: str, source: str, content_sha256: str | None) -> Path | None:
    """The cached index of a backup, if there is one whose content the manifest vouches for."""
    path = store_path(state_dir, job, backup_id, source)
    if not content_sha256:
        return None
    sha = hashlib.sha256()
    try:
        for chunk in _plain(path):
            sha.update(chunk)
    except (OSError, zstandard.ZstdError):
        return None
    return path if sha.hexdigest() == content_sha256 else None


def _plain(path: Path) -> Iterator[bytes]:
    with open(path, "rb") as fh:
        reader = zstandard.ZstdDecompressor().stream_reader(fh, read_size=READ, read_across_frames=True)
        while chunk := reader.read(READ):
            yield chunk


def entries(path: Path) -> Iterator[dict[str, Any]]:
    """A cached index's entries in walk order, each with its line (RAW), in constant memory
    (IndexFormatError if malformed)."""
    yield from iter_index(_plain(path), raw=True)
