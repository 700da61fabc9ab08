"""The job's exclusive lock: flock on STATE_DIR/locks/JOB.lock, never blocking.

The holder writes who it is (pid, run id, start time) into the lock file so
that a contender can say who holds it. The lock dies with the process (the
kernel drops flocks of a closed descriptor), so a killed run never leaves a
stale lock behind.

A flock guards an inode, not a path: a lock file deleted or replaced while a
run holds it would let the next run lock a fresh file. So a contender checks
that the file it locked is still the one at the path (else it tries again),
and the run then asks the journal whether a run of the job is still alive
(`alive_since`), which no file operation can hide.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import threading
import time
from pathlib import Path
from typing import Any

ATTEMPTS = 5


def process_start(pid: int) -> float | None:
    """When process `pid` started (epoch seconds), or None when there is no such process."""
    try:
        stat_line = Path(f"/proc/{pid}/stat").read_text()
        boot = next(line for line in Path("/proc/stat").read_text().splitlines() if line.startswith("btime "))
    except (OSError, StopIteration):
        return None
    # Field 22 (starttime, clock ticks after boot); the command name in (…) may hold spaces.
    ticks = int(stat_line.rsplit(")", 1)[1].split()[19])
    return int(boot.split()[1]) + ticks / os.sysconf("SC_CLK_TCK")


def is_alive(pid: int, started_at: float) -> bool:
    """True when `pid` is the process that recorded a run at `started_at`, not a later
    process that reuses its number (that one started after the run was recorded)."""
    began = process_start(pid)
    return began is not None and began <= started_at + 1.0  # btime and ticks round to whole seconds


class LockHeld(Exception):
    def __init__(self, holder: dict[str, Any]) -> None:
        super().__init__(describe_holder(holder))
        self.holder = holder


def describe_holder(holder: dict[str, Any]) -> str:
    if not holder:
        return "held by another vigil process (holder not yet recorded)"
    return (
        f"held by run {holder.get('run_id', '?')} (pid {holder.get('pid', '?')} on "
        f"{holder.get('host', '?')}, started {holder.get('started_at', '?')})"
    )


class JobLock:
    def __init__(self, state_dir: Path, job: str) -> None:
        self.path = state_dir / "locks" / f"{job}.lock"
        self._fd: int | None = None

    def acquire(self, holder: dict[str, Any]) -> None:
        """Take the lock or raise LockHeld naming the current holder."""
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        for _ in range(ATTEMPTS):
            # O_NOFOLLOW: a symlink planted at the path must not redirect the lock (or its truncation).
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as exc:
                os.close(fd)
                if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                    raise LockHeld(self._read_holder()) from None
                raise
            if self._still_at_path(fd):
                break
            os.close(fd)  # removed or replaced between open and flock: lock what is there now
        else:
            raise OSError(errno.EAGAIN, "the lock file keeps being replaced", str(self.path))
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(holder).encode(), 0)
        self._fd = fd

    def _still_at_path(self, fd: int) -> bool:
        try:
            there = os.stat(self.path, follow_symlinks=False)
        except FileNotFoundError:
            return False
        mine = os.fstat(fd)
        return (mine.st_dev, mine.st_ino) == (there.st_dev, there.st_ino)

    def release(self) -> None:
        if self._fd is not None:
            os.ftruncate(self._fd, 0)
            os.close(self._fd)
            self._fd = None

    def is_held_elsewhere(self) -> bool:
        """True when another process holds the lock right now (for health)."""
        try:
            fd = os.open(self.path, os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            return False
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except OSError:
            return True
        finally:
            os.close(fd)
        return False

    def _read_holder(self) -> dict[str, Any]:
        # The holder writes its details right after taking the lock; a
        # contender arriving in that instant waits a moment for them.
        for _ in range(20):
            try:
                text = self.path.read_text()
                if text:
                    holder: dict[str, Any] = json.loads(text)
                    return holder
            except (OSError, ValueError):
                pass
            time.sleep(0.025)
        return {}


class S3Lease:
    """A lease lock on object storage, for a job that several hosts may run.

    The lease object `{prefix}{job}/locks/lease` is created with a conditional
    write (If-None-Match: *), so exactly one host wins; its body says who holds
    it until when. The holder renews it (If-Match on its own ETag) while the
    run lasts; a lease whose expiry has passed belonged to a host that died and
    is taken over with If-Match on the stale ETag, so two hosts cannot both
    take it over. The local flock is always taken first.
    """

    TTL = 600.0  # seconds a lease lives without renewal
    RENEW = 120.0

    def __init__(self, destination: Any, job: str) -> None:
        self.s3 = destination.s3
        self.bucket = destination.cfg.bucket
        self.key = f"{destination.cfg.prefix}{job}/locks/lease"
        self._etag: str | None = None
        self._holder: dict[str, Any] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.lost: str | None = None

    def _body(self) -> bytes:
        return json.dumps({**self._holder, "expires_at": time.time() + self.TTL}).encode()

    def _put(self, **condition: str) -> str:
        etag: str = self.s3.put_object(Bucket=self.bucket, Key=self.key, Body=self._body(),
                                       ContentType="application/json", **condition)["ETag"]
        return etag

    def acquire(self, holder: dict[str, Any]) -> None:
        from botocore.exceptions import ClientError

        self._holder = holder
        try:
            self._etag = self._put(IfNoneMatch="*")
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") not in ("PreconditionFailed", "412"):
                raise
            current = self.s3.get_object(Bucket=self.bucket, Key=self.key)
            other = json.loads(current["Body"].read() or b"{}")
            if other.get("expires_at", 0) > time.time():
                raise LockHeld(other) from None
            try:  # expired: take it over, unless another host just did
                self._etag = self._put(IfMatch=current["ETag"])
            except ClientError:
                raise LockHeld(other) from None
        self._thread = threading.Thread(target=self._renew, name="vigil-lease", daemon=True)
        self._thread.start()

    def _renew(self) -> None:
        while not self._stop.wait(self.RENEW):
            try:
                self._etag = self._put(IfMatch=self._etag or "")
            except Exception as exc:  # noqa: BLE001 - reported by the run, which keeps going
                self.lost = f"lease {self.key} could not be renewed: {exc}"
                return

    def release(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        try:
            head = self.s3.head_object(Bucket=self.bucket, Key=self.key)
            if head["ETag"] == self._etag:
                self.s3.delete_object(Bucket=self.bucket, Key=self.key)
        except Exception:  # noqa: BLE001 - an unreleased lease expires on its own
            pass
