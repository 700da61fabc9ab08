#!/usr/bin/env python3
"""Time `vigil run` against tar+gzip and tar+zstd on the same tree, in the same run.

    python bench/bench_backup.py [--data DIR] [--repeat 5] [--scale full|small]

Runs the three commands alternately (the machine is shared and noisy), prints
each median, the ratios vigil/tar-gz and vigil/tar-zstd, and vigil's peak RSS.
vigil's time includes its read-back verification of every stored artifact.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from gen_dataset import generate  # noqa: E402


def precompile() -> None:
    """Byte-compile vigil's sources first. An editable install under
    PYTHONDONTWRITEBYTECODE=1 (as on the CI machines) would otherwise compile
    every module on every start, which an installed vigil never does."""
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(HERE.parent / "src")], check=False)


def default_vigil() -> str:
    """The `vigil` next to the interpreter running the bench (the venv's), else on PATH."""
    beside = Path(sys.executable).parent / "vigil"
    return str(beside) if beside.exists() else shutil.which("vigil") or "vigil"


def machine_cpu() -> tuple[float, float]:
    """CPU seconds this machine has worked (all cores, servers included) and had
    stolen by its hypervisor so far, from /proc/stat. Busy seconds count the
    work a command caused wherever it ran (a database server's backends too);
    steal says how much the shared host took away from this run."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    tick = os.sysconf("SC_CLK_TCK")
    user, nice, system, _idle, _iowait, irq, softirq, steal = fields[:8]
    return (user + nice + system + irq + softirq) / tick, steal / tick


def timed(cmd: list[str] | str, *, shell: bool = False) -> tuple[float, int]:
    """Wall seconds and peak RSS (KiB) of one command and its children."""
    start = time.perf_counter()
    try:
        if shell:  # a pipeline fails when any of its commands does, not only the last
            cmd = ["bash", "-o", "pipefail", "-c", cmd]  # type: ignore[list-item]
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    except FileNotFoundError:
        sys.exit(f"benchmark command not found: {cmd[0] if isinstance(cmd, list) else cmd} (give --vigil PATH)")
    _, status, usage = os.wait4(proc.pid, 0)
    took = time.perf_counter() - start
    if os.waitstatus_to_exitcode(status) != 0:
        sys.exit(f"benchmark command failed: {cmd}\n{proc.stderr.read().decode() if proc.stderr else ''}")
    return took, usage.ru_maxrss


def files_job(work: Path, data: Path) -> Path:
    """A job backing `data` up into `work`, as the benchmarks run it."""
    job = work / "bench.toml"
    job.write_text(
        f'name = "bench"\nstate_dir = "{work}/state"\n'
        f'[[source]]\ntype = "files"\nname = "app"\npath = "{data}"\n'
        f'[[destination]]\ntype = "local"\npath = "{work}/dest"\n'
    )
    return job


def dataset(scale: str, kind: str = "web") -> Path:
    """The generated tree of this scale and kind, generated when missing. The full web
    tree is bench/data/tree; the others are named after scale and kind."""
    path = HERE / "data" / ("tree" if (scale, kind) == ("full", "web") else f"tree-{kind}-{scale}")
    if not path.exists():
        print(f"generating dataset in {path} ...", file=sys.stderr)
        generate(path, scale, kind=kind)
    return path


def tree_bench(description: str | None, options: Callable[[argparse.ArgumentParser], None] | None = None,
               ) -> tuple[argparse.Namespace, Path, Path]:
    """What the files benchmarks share: arguments (`options` adds a script's own), the
    dataset (generated when missing), vigil byte-compiled, a work directory and a job
    backing the tree up."""
    ap = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, help="the tree to back up (default: generated at --scale)")
    ap.add_argument("--scale", choices=["full", "small"], default="full")
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--vigil", default=default_vigil())
    if options is not None:
        options(ap)
    args = ap.parse_args()
    if args.data is None:
        args.data = dataset(args.scale)
    elif not args.data.exists():
        print(f"generating dataset in {args.data} ...", file=sys.stderr)
        generate(args.data, args.scale)
    precompile()
    work = Path(tempfile.mkdtemp(prefix="vigil-bench-", dir=args.data.parent))
    return args, work, files_job(work, args.data)


def warm(data: Path) -> None:
    """Read the tree once so that no contender pays for the first read. (Through a pipe:
    GNU tar writing to /dev/null itself skips reading file contents.)"""
    subprocess.run(f"tar -cf - -C {data} . | cat > /dev/null", shell=True, check=True)


def versus_tar(data: Path, work: Path, job: Path, vigil: str, repeat: int, *, gzip: bool = True,
               ) -> tuple[dict[str, float], int]:
    """Alternate `tar -czf` (when `gzip`), `tar | zstd -T0 -3` and a first (so full) `vigil run`
    of `data` with `job`, `repeat` rounds; the medians, and vigil's peak RSS in KiB."""
    warm(data)
    times: dict[str, list[float]] = {"tar -czf": [], "tar | zstd -T0 -3": [], "vigil run": []}
    if not gzip:
        del times["tar -czf"]
    rss: list[int] = []
    for i in range(repeat):
        if gzip:
            times["tar -czf"].append(timed(["tar", "-czf", str(work / "out.tar.gz"), "-C", str(data), "."])[0])
        times["tar | zstd -T0 -3"].append(
            timed(f"tar -cf - -C {data} . | zstd -q -T0 -3 > {work}/out.tar.zst", shell=True)[0])
        shutil.rmtree(work / "dest", ignore_errors=True)
        took, peak = timed([vigil, "-q", "--config", str(job), "run"])
        times["vigil run"].append(took)
        rss.append(peak)
        print(f"round {i + 1}: " + ", ".join(f"{k} {v[-1]:.2f}s" for k, v in times.items()), file=sys.stderr)
    for leftover in ("out.tar.gz", "out.tar.zst"):
        (work / leftover).unlink(missing_ok=True)
    return {k: statistics.median(v) for k, v in times.items()}, max(rss)


def tree_size(data: Path) -> tuple[int, int]:
    """Files and bytes of a tree (symlinks not followed)."""
    files = sum(len(f) for _, _, f in os.walk(data))
    size = sum(p.stat().st_size for p in data.rglob("*") if p.is_file() and not p.is_symlink())
    return files, size


def main() -> None:
    args, work, job = tree_bench(__doc__)
    try:
        med, rss = versus_tar(args.data, work, job, args.vigil, args.repeat)
        files, size = tree_size(args.data)
        print(f"dataset: {files} files, {size / 1e6:.0f} MB; {args.repeat} rounds, medians:")
        for k, v in med.items():
            print(f"  {k:<20} {v:7.2f} s")
        print(f"  vigil is {med['tar -czf'] / med['vigil run']:.1f}x faster than tar -czf "
              f"(target >= 6x)")
        print(f"  vigil / tar|zstd = {med['vigil run'] / med['tar | zstd -T0 -3']:.2f} (target <= 1.6)")
        print(f"  vigil peak RSS: {rss / 1024:.0f} MiB (target < 250)")
    finally:
        shutil.rmtree(work, ignore_errors=True)  # also when a command failed


if __name__ == "__main__":
    main()
