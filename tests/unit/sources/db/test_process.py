"""Child processes on pipes: how far a dump may run ahead of vigil, and how often either side wakes vigil."""

from __future__ import annotations

import hashlib
import os
import resource
import subprocess
import sys

import pytest

from vigil.errors import BackupError
from vigil.sources.db.process import Child, feed, tool_env


def test_a_dump_runs_up_to_a_mebibyte_ahead_of_its_reader():
    # With the kernel's default 64 KiB pipe a dump stalls while vigil compresses and
    # counts a 1 MiB chunk; here the child writes 960 KiB and exits before any read.
    with Child(["sh", "-c", "head -c 983040 /dev/zero"], tool_env(), "writer") as child:
        try:
            child.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            raise AssertionError("the writer is blocked on a full pipe") from None
        got = child.proc.stdout.read()
        child.finish()
    assert len(got) == 983040


def wake_ups() -> int:
    """Voluntary context switches of this thread so far: one per wait on a pipe."""
    return resource.getrusage(resource.RUSAGE_THREAD).ru_nvcsw


# A producer like mariadb-dump: a 4 KiB write every ~40 us (100 MB/s), slower than vigil reads.
SMALL_WRITES = """
import os, time
for i in range(1024):
    os.write(1, i.to_bytes(4, "big") * 1024)
    busy = time.perf_counter() + 40e-6
    while time.perf_counter() < busy:
        pass
"""


def test_a_dump_written_in_small_pieces_is_read_with_few_wake_ups():
    # A reader blocked on the pipe wakes for every write: 1,024 times here. Waiting for the
    # pipe to fill halfway costs a few dozen wake-ups and hands over chunks of 512 KiB or more.
    chunks: list[bytes] = []
    with Child([sys.executable, "-c", SMALL_WRITES], tool_env(), "writer") as child:
        before = wake_ups()
        child.stream_to(chunks.append)
        woken = wake_ups() - before
        child.finish()
    assert b"".join(chunks) == b"".join(i.to_bytes(4, "big") * 1024 for i in range(1024))
    assert all(len(c) >= 512 << 10 for c in chunks[:-1]), [len(c) for c in chunks]
    assert woken < 200, f"{woken} wake-ups for 1,024 writes"


def test_a_dump_that_pauses_and_ends_is_read_to_its_last_byte():
    # Pauses longer than the longest wait, then the end: nothing is held back or lost.
    script = "import os, time\nfor i in range(5):\n    os.write(1, b'%d;' % i)\n    time.sleep(0.15)\n"
    chunks: list[bytes] = []
    with Child([sys.executable, "-c", script], tool_env(), "writer") as child:
        child.stream_to(chunks.append)
        child.finish()
    assert b"".join(chunks) == b"0;1;2;3;4;"


# A consumer like pg_restore: reads of 4 KiB, then the SHA-256 of all it read into a file.
SMALL_READS = """
import hashlib, os, sys, time
sha = hashlib.sha256()
while block := os.read(0, 4096):
    sha.update(block)
    busy = time.perf_counter() + 20e-6
    while time.perf_counter() < busy:
        pass
open(sys.argv[1], "w").write(sha.hexdigest())
"""


def test_a_restore_fed_to_a_slow_reader_wakes_vigil_rarely(tmp_path):
    # The mirror image: a writer blocked on a full pipe wakes for every 4 KiB the reader takes.
    data = [os.urandom(1 << 20) for _ in range(4)]
    before = wake_ups()
    feed([sys.executable, "-c", SMALL_READS, str(tmp_path / "sha")], tool_env(), "reader", data)
    woken = wake_ups() - before
    assert (tmp_path / "sha").read_text() == hashlib.sha256(b"".join(data)).hexdigest()
    assert woken < 200, f"{woken} wake-ups for 1,024 reads"


def test_a_reader_that_stops_early_is_not_waited_for_and_its_failure_is_reported():
    data = [b"x" * (1 << 20)] * 8
    feed(["sh", "-c", "head -c 1000 >/dev/null"], tool_env(), "reader", data)  # exits 0: fine
    with pytest.raises(BackupError, match="boom"):
        feed(["sh", "-c", "head -c 1000 >/dev/null; echo boom >&2; exit 3"], tool_env(), "reader", data)
