"""The job's exclusive lock: flock on STATE_DIR/locks/JOB.lock, never blocking.

The holder writes who it is (pid, run id, start time) into the lock file so
that a contender can say who holds it. The lock dies with the process (the
kernel drops flocks of a closed descriptor), so a killed run never leaves a
stale lock behind.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import time
from pathlib import Path
from typing import Any


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
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            os.close(fd)
            if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise LockHeld(self._read_holder()) from None
            raise
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(holder).encode(), 0)
        self._fd = fd

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
                    return json.loads(text)
            except (OSError, ValueError):
                pass
            time.sleep(0.025)
        return {}
