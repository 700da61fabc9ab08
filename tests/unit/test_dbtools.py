"""The dump child process: how far it may run ahead of vigil reading it."""

from __future__ import annotations

import resource
import subprocess
import sys

from vigil.sources.dbtools import Child, child_env


def test_a_dump_runs_up_to_a_mebibyte_ahead_of_its_reader():
    # With the kernel's default 64 KiB pipe a dump stalls while vigil compresses and
    # counts a 1 MiB chunk; here the child writes 960 KiB and exits before any read.
    with Child(["sh", "-c", "head -c 983040 /dev/zero"], child_env(), "writer") as child:
        try:
            child.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            raise AssertionError("the writer is blocked on a full pipe") from None
        got = child.proc.stdout.read()
        child.finish()
    assert len(got) == 983040


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
    with Child([sys.executable, "-c", SMALL_WRITES], child_env(), "writer") as child:
        before = resource.getrusage(resource.RUSAGE_THREAD).ru_nvcsw
        child.stream_to(chunks.append)
        woken = resource.getrusage(resource.RUSAGE_THREAD).ru_nvcsw - before
        child.finish()
    assert b"".join(chunks) == b"".join(i.to_bytes(4, "big") * 1024 for i in range(1024))
    assert all(len(c) >= 512 << 10 for c in chunks[:-1]), [len(c) for c in chunks]
    assert woken < 200, f"{woken} wake-ups for 1,024 writes"


def test_a_dump_that_pauses_and_ends_is_read_to_its_last_byte():
    # Pauses longer than the longest wait, then the end: nothing is held back or lost.
    script = "import os, time\nfor i in range(5):\n    os.write(1, b'%d;' % i)\n    time.sleep(0.15)\n"
    chunks: list[bytes] = []
    with Child([sys.executable, "-c", script], child_env(), "writer") as child:
        child.stream_to(chunks.append)
        child.finish()
    assert b"".join(chunks) == b"0;1;2;3;4;"
