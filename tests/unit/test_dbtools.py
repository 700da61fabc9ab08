"""The dump child process: how far it may run ahead of vigil reading it."""

from __future__ import annotations

import subprocess

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
