#!/usr/bin/env python3
"""Time `vigil restore` and `vigil verify --deep` against zstd + tar, in the same run.

    python bench/bench_restore.py [--data DIR] [--repeat 5]

Backs the generated tree up once, then alternates (writing many files is
noisy): `zstd -dc FILE | tar -x` into an empty directory vs `vigil restore`
into an empty directory; and `zstd -dc FILE | tar -xO | HASH` (decompress,
walk the tar, hash every file's content) vs `vigil verify --deep`, with HASH
both `openssl dgst -sha256` (SHA-NI accelerated, the fastest SHA-256 here) and
coreutils `sha256sum` (the tool SPEC §4 names for checking a backup by hand):
which hashing tool is the baseline decides the ratio. Prints medians, ratios and
peak RSS.
"""

from __future__ import annotations

import shutil
import statistics
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from bench_backup import timed, tree_bench  # noqa: E402


def main() -> None:
    args, work, job = tree_bench(__doc__)
    try:
        timed([args.vigil, "-q", "--config", str(job), "run"])  # the backup the rounds read
        [archive] = (work / "dest" / "bench").glob("*/files-app.tar.zst")
        hashers = {"openssl": "openssl dgst -sha256", "sha256sum": "sha256sum"}
        hashers = {k: v for k, v in hashers.items() if shutil.which(v.split()[0])}
        times: dict[str, list[float]] = {k: [] for k in ("zstd | tar -x", "vigil restore",
                                                         *(f"tar -xO | {h}" for h in hashers), "vigil verify --deep")}
        rss: dict[str, int] = {"restore": 0, "verify": 0}
        for i in range(args.repeat):
            for name in ("a", "b"):
                shutil.rmtree(work / name, ignore_errors=True)
            (work / "a").mkdir()
            subprocess.run(["sync"])  # no writeback of the previous round inside this one
            times["zstd | tar -x"].append(timed(f"zstd -dc '{archive}' | tar -x -C '{work}/a'", shell=True)[0])
            subprocess.run(["sync"])
            t, m = timed([args.vigil, "-q", "--config", str(job), "restore", "bench", "latest", "--source", "app",
                          "--to", str(work / "b")])
            times["vigil restore"].append(t)
            rss["restore"] = max(rss["restore"], m)
            subprocess.run(["sync"])  # the restored trees' writeback is not the reads' business
            for h, cmd in hashers.items():
                times[f"tar -xO | {h}"].append(timed(f"zstd -dc '{archive}' | tar -xO | {cmd} > /dev/null",
                                                     shell=True)[0])
            t, m = timed([args.vigil, "-q", "--config", str(job), "verify", "bench", "latest", "--deep"])
            times["vigil verify --deep"].append(t)
            rss["verify"] = max(rss["verify"], m)
            print(f"round {i + 1}: " + ", ".join(f"{k} {v[-1]:.2f}s" for k, v in times.items()), file=sys.stderr)
        med = {k: statistics.median(v) for k, v in times.items()}
        print(f"archive {archive.stat().st_size / 1e6:.0f} MB; {args.repeat} rounds, medians:")
        for k, v in med.items():
            print(f"  {k:<22} {v:7.2f} s")
        print(f"  restore / (zstd | tar -x)      = {med['vigil restore'] / med['zstd | tar -x']:.2f} (target <= 1.3)")
        for h in hashers:
            print(f"  verify --deep / (zstd | tar -xO | {h}) = "
                  f"{med['vigil verify --deep'] / med[f'tar -xO | {h}']:.2f} (target <= 1.3)")
        print(f"  peak RSS: restore {rss['restore'] / 1024:.0f} MiB, verify --deep {rss['verify'] / 1024:.0f} MiB")
    finally:
        shutil.rmtree(work, ignore_errors=True)  # also when a command failed


if __name__ == "__main__":
    main()
