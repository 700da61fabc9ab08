"""SHA-256 off the producer's thread, with bounded memory.

hashlib releases the GIL on large buffers, so hashing big file contents on a
worker thread overlaps with the producer's Python work. Small contents are
hashed inline: handing them over would cost more than hashing them.
"""

from __future__ import annotations

import hashlib
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, Union

INLINE = 256 << 10  # below this, hash on the calling thread
IN_FLIGHT = 64 << 20  # at most this many bytes queued for hashing

Digest = Union[str, None, "Future[str]"]


def _hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class Hasher:
    def __init__(self) -> None:
        # One worker: submissions run in order, so a streamed file's updates
        # and its final hexdigest never overtake each other.
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="vigil-hash")
        self._inflight: deque[tuple[Future[str], int]] = deque()
        self._bytes = 0

    def submit(self, n: int, fn: Any, *args: Any) -> Future[str]:
        """Run fn(*args) on the worker, in order; `n` bytes count against IN_FLIGHT."""
        fut = self._pool.submit(fn, *args)
        self._inflight.append((fut, n))
        self._bytes += n
        while self._inflight and (self._bytes > IN_FLIGHT or self._inflight[0][0].done()):
            done, k = self._inflight.popleft()
            done.result()
            self._bytes -= k
        return fut

    def digest(self, data: bytes) -> Digest:
        """Hex SHA-256 of data now, or a future of it for large data."""
        if len(data) < INLINE:
            return _hex(data)
        return self.submit(len(data), _hex, data)

    def stream(self) -> StreamDigest:
        return StreamDigest(self)

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)


class StreamDigest:
    """Incremental SHA-256 whose updates run on the hasher's worker."""

    def __init__(self, hasher: Hasher) -> None:
        self._hasher = hasher
        self._sha = hashlib.sha256()

    def update(self, chunk: bytes) -> None:
        self._hasher.submit(len(chunk), self._sha.update, chunk)

    def hexdigest(self) -> Future[str]:
        return self._hasher.submit(0, self._sha.hexdigest)
