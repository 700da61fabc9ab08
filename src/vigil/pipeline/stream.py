"""One producer, N destination sinks: compress once, hash once, write everywhere.

A source writes raw bytes into an `ArtifactStream`; the stream compresses
them with zstd (multi-threaded) and hands each compressed chunk to a `FanOut`,
which counts and hashes it once and writes it to every destination that is
still healthy. A destination that fails is dropped from the fan-out and
remembered, so one broken disk cannot spoil the backup on the others.
"""

from __future__ import annotations

import hashlib
import queue
import threading
from collections.abc import Callable
from typing import Any

import zstandard

from vigil.destinations.base import Sink

ZSTD_LEVEL = 3
# Small writes are gathered up to BUFFER first (a call into the compressor per
# tar header would cost more than the header); writes of DIRECT bytes or more
# go straight in, sparing a copy.
BUFFER = 1 << 20
DIRECT = 64 << 10
JOB_SIZE = 2 << 20


class FanOut:
    """Counts, hashes and copies compressed bytes to every live sink.

    The hashing and the writes run on a background thread (both release the
    GIL), so the producer's Python work overlaps with them. The queue is
    bounded: memory stays at QUEUE chunks however large the artifact.
    """

    QUEUE = 8

    def __init__(self, sinks: dict[str, Sink], on_failure: Callable[[str, BaseException], None]) -> None:
        self.sinks = sinks
        self.on_failure = on_failure
        self.size = 0
        self._sha = hashlib.sha256()
        self._failures: list[tuple[str, BaseException]] = []
        self._queue: queue.Queue[bytes | None] = queue.Queue(self.QUEUE)
        self._aborted = threading.Event()
        self._thread = threading.Thread(target=self._drain, name="vigil-fanout", daemon=True)
        self._thread.start()

    def write(self, data: bytes | memoryview) -> int:
        n = len(data)
        if n:
            self.size += n
            self._queue.put(data if isinstance(data, bytes) else bytes(data))
        self._report()
        return n

    def _drain(self) -> None:
        # Polls the abort flag: a signal can interrupt the producer anywhere,
        # even between a queue's append and its wake-up call, so abort must
        # not depend on the queue delivering a sentinel.
        while not self._aborted.is_set():
            try:
                data = self._queue.get(timeout=0.1)
            except queue.Empty:
                continue
            if data is None:
                return
            self._sha.update(data)
            for name, sink in list(self.sinks.items()):
                try:
                    sink.write(data)
                except Exception as exc:  # noqa: BLE001 - any sink failure isolates that sink
                    self._drop(name, exc)

    def _drop(self, name: str, exc: BaseException) -> None:
        sink = self.sinks.pop(name)
        sink.abort()
        self._failures.append((name, exc))

    def _report(self) -> None:
        # Failures are reported on the producer's thread, where the run lives.
        while self._failures:
            self.on_failure(*self._failures.pop(0))

    def close(self) -> None:
        if self._thread.is_alive():
            self._queue.put(None)
            self._thread.join()
        for name, sink in list(self.sinks.items()):
            try:
                sink.close()
            except Exception as exc:  # noqa: BLE001
                self._drop(name, exc)
        self._report()

    def abort(self) -> None:
        self._aborted.set()
        self._thread.join()
        for sink in self.sinks.values():
            sink.abort()

    @property
    def sha256(self) -> str:
        return self._sha.hexdigest()

    # zstandard's stream_writer calls flush() on its target.
    def flush(self) -> None:
        pass


class Tee:
    """Hands the compressed stream to several targets (plain and encrypted fan-outs)."""

    def __init__(self, targets: list[Any]) -> None:
        self.targets = targets

    def write(self, data: bytes | memoryview) -> int:
        for t in self.targets:
            t.write(data)
        return len(data)

    def flush(self) -> None:
        pass

    def close(self) -> None:
        for t in self.targets:
            t.close()

    def abort(self) -> None:
        for t in self.targets:
            t.abort()


class ArtifactStream:
    """The writable end a source sees: raw bytes in, compressed artifact out."""

    def __init__(self, fanout: Any, *, threads: int = -1, level: int = ZSTD_LEVEL) -> None:
        self.fanout = fanout
        self.raw_bytes = 0
        # Multi-threaded zstd compresses in jobs; whatever job is unfinished when the
        # source ends is compressed after it, on the clock. 2 MiB jobs (zstd's default
        # at level 3 is 8 MiB) cut that tail from ~30 ms to ~6 ms at the same ratio.
        params = zstandard.ZstdCompressionParameters.from_level(
            level, threads=threads, **({"job_size": JOB_SIZE} if threads else {}))
        cctx = zstandard.ZstdCompressor(compression_params=params)
        self._z = cctx.stream_writer(fanout, closefd=False, write_return_read=True)
        self._buf = bytearray()
        self.meta: dict[str, Any] = {}

    def write(self, data: bytes | bytearray | memoryview) -> None:
        n = len(data)
        self.raw_bytes += n
        if n >= DIRECT:
            self._drain()
            self._z.write(data)
            return
        self._buf += data
        if len(self._buf) >= BUFFER:
            self._drain()

    def _drain(self) -> None:
        if self._buf:
            self._z.write(self._buf)
            self._buf = bytearray()

    def close(self) -> None:
        self._drain()
        self._z.flush(zstandard.FLUSH_FRAME)
        self._z.close()  # type: ignore[no-untyped-call]  # zstandard leaves close() unannotated
        self.fanout.close()

    def abort(self) -> None:
        self.fanout.abort()
