"""Reading stored artifacts back: hashed while read, decompressed on the fly.

Whatever reads a backup (verify, restore) goes through `ArtifactReader`, so
a stored byte that differs from the manifest is always noticed: at the latest
when the stream ends, before anything reports success.
"""

from __future__ import annotations

import hashlib
import queue
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import zstandard

from vigil.destinations.base import Destination, Reader
from vigil.errors import BackupError, ConfigError, Damaged
from vigil.formats.manifest import Artifact, Manifest
from vigil.pipeline.progress import NO_PROGRESS, Meter

READ = 1 << 20


class ChecksumError(Damaged):
    """The stored bytes are not the ones the manifest lists."""


class _Hashing:
    """A file object that hashes what passes through it."""

    def __init__(self, fh: Reader) -> None:
        self.fh = fh
        self.sha = hashlib.sha256()
        self.size = 0

    def read(self, n: int = -1) -> bytes:
        data = self.fh.read(n)
        self.sha.update(data)
        self.size += len(data)
        return data

    def drain(self) -> None:
        while self.read(READ):
            pass


class _Prefetch:
    """Reads `reader` on a worker thread, a few chunks ahead of the consumer: file
    reads, zstd and hashlib release the GIL, so that work overlaps with the
    consumer's parsing and hashing. Bounded: DEPTH chunks."""

    DEPTH = 4

    def __init__(self, reader: Any) -> None:
        self._reader = reader
        self._queue: queue.Queue[bytes | None] = queue.Queue(self.DEPTH)
        self._error: BaseException | None = None
        self._stop = threading.Event()
        self._buf = b""
        self._eof = False
        self._thread = threading.Thread(target=self._run, name="vigil-read", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            while not self._stop.is_set() and (chunk := self._reader.read(READ)):
                self._queue.put(chunk)
        except BaseException as exc:  # noqa: BLE001 - handed to the consumer, raised on its thread
            self._error = exc
        finally:
            self._queue.put(None)

    def _next(self) -> bytes:
        if self._eof:
            return b""
        chunk = self._queue.get()
        if chunk is None:
            self._eof = True
            if self._error is not None:
                raise self._error
            return b""
        return chunk

    def read(self, n: int = -1) -> bytes:
        if n < 0:
            parts = [self._buf]
            while chunk := self._next():
                parts.append(chunk)
            self._buf = b""
            return b"".join(parts)
        if not self._buf:
            self._buf = self._next()
        out, self._buf = self._buf[:n], self._buf[n:]
        return out

    def drain(self) -> None:
        self._buf = b""
        while self._next():
            pass

    def stop(self) -> None:
        self._stop.set()
        while self._thread.is_alive():
            try:
                self._queue.get(timeout=0.05)  # unblock a worker waiting to put
            except queue.Empty:
                pass
        self._thread.join()


class ArtifactReader:
    def __init__(self, dest: Destination, manifest: Manifest, art: Artifact,
                 decrypt: Callable[[Any, str], Any] | None = None, meter: Meter = NO_PROGRESS) -> None:
        self.dest = dest
        self.manifest = manifest
        self.art = art
        self.decrypt = decrypt  # (stored stream, where) -> plaintext; keys are read only when used
        self.meter = meter

    @property
    def where(self) -> str:
        return f"{self.dest.name}:{self.manifest.job}/{self.manifest.id}/{self.art.name}"

    def _check(self, h: _Hashing) -> None:
        if h.size != self.art.size or h.sha.hexdigest() != self.art.sha256:
            raise ChecksumError(
                f"{self.where}: checksum mismatch: {h.size} bytes with sha256 {h.sha.hexdigest()[:16]}…, "
                f"manifest says {self.art.size} bytes with sha256 {self.art.sha256[:16]}…")

    def check(self) -> None:
        """Size and SHA-256 against the manifest, in constant memory."""
        with self.dest.read(self.manifest.job, self.manifest.id, self.art.name) as fh:
            h = _Hashing(fh)
            with self.meter.track(self.art.name, self.art.size, lambda: h.size):
                h.drain()
        self._check(h)

    @contextmanager
    def stream(self) -> Iterator[Any]:
        """A read()-able decompressed stream. Reading it to its end (or leaving the
        block normally) compares the stored bytes with the manifest; ChecksumError
        if they differ, also when decompression or a consumer failed on the way."""
        if self.art.encrypted and self.decrypt is None:
            raise ConfigError(f"{self.where}: encrypted; a key is needed to read it")
        with self.dest.read(self.manifest.job, self.manifest.id, self.art.name) as fh:
            h = _Hashing(fh)
            with self.meter.track(self.art.name, self.art.size, lambda: h.size):
                # Two stages ahead of the consumer (a tar walk, per-file hashes): one reads
                # and hashes the stored bytes, one decrypts and decompresses them.
                stored = _Prefetch(h)
                plain: Any = self.decrypt(stored, self.where) if self.art.encrypted and self.decrypt else stored
                unzstd = zstandard.ZstdDecompressor().stream_reader(plain, read_size=READ, read_across_frames=True)
                pre = _Prefetch(unzstd)
                try:
                    try:
                        yield pre
                        pre.drain()
                    finally:
                        pre.stop()  # the workers are gone before anyone else touches h
                        stored.stop()
                        if plain is not stored:
                            plain.close()
                except zstandard.ZstdError as exc:
                    h.drain()
                    self._check(h)  # a damaged artifact: say so as a checksum error
                    raise Damaged(f"{self.where}: cannot decompress: {exc}") from None
                except BackupError as exc:
                    if not isinstance(exc, ChecksumError):
                        h.drain()
                        self._check(h)  # the root cause first: was the stored artifact damaged?
                    raise
                h.drain()
        self._check(h)

    def plain(self) -> Iterator[bytes]:
        """The decompressed content in chunks, checked at the end like stream()."""
        with self.stream() as reader:
            while chunk := reader.read(READ):
                yield chunk


def find_backup(destinations: list[Destination], job: str, backup_id: str) -> list[tuple[Destination, Manifest]]:
    """The backup `backup_id` (or `latest`) on every destination that has it."""
    found: list[tuple[Destination, Manifest]] = []
    for dest in destinations:
        backups = dest.list(job)
        if backup_id == "latest":
            match = backups[:1]
        else:
            match = [m for m in backups if m.id == backup_id]
        found.extend((dest, m) for m in match)
    if backup_id == "latest" and found:
        newest = max(found, key=lambda f: (f[1].started, f[1].id))[1].id
        found = [(d, m) for d, m in found if m.id == newest]
    return found


def with_chain(dest: Destination, manifest: Manifest, listed: list[Manifest] | None = None) -> list[Manifest]:
    """The backups an incremental backup is read from (SPEC §11): its chain, oldest first,
    then itself, all from `dest` (whose complete backups are `listed`, when the caller has
    them already). Damaged when the chain is broken there."""
    if not manifest.chain:
        return [manifest]
    held = {m.id: m for m in (dest.list(manifest.job) if listed is None else listed)}
    missing = [c for c in manifest.chain if c not in held]
    if missing:
        raise Damaged(f"{dest.name}:{manifest.job}/{manifest.id}: chain broken: base {missing[0]} is missing")
    return [*(held[c] for c in manifest.chain), manifest]
