#!/usr/bin/env python3
"""Incremental file backups (SPEC §11): time, storage, restore and memory, with peers.

    python bench/bench_incremental.py [--scale full|small] [--repeat 5] [--million] [--restore-to DIR]

Works on copies of the generated tree (`bench/gen_dataset.py`), which one
`mutate` day at a time changes: ~300 files edited, ~20 created, ~10 deleted.
In one run, printing each part as it ends:

1. time: a full `vigil run --full`, then one day of changes, an incremental
   `vigil run` and `restic backup` of it (alternating which goes first), then
   a no-change run of each; `--repeat` rounds, medians, ratios to the full.
2. storage: a full backup and seven daily incrementals, one mutated day
   before each: the bytes in vigil's destination against its one full, and
   the restic and borg repositories holding the same eight snapshots.
3. restore: the seventh incremental (its chain read archive by archive)
   against a `vigil run --full` of the same state, alternating, `sync` between
   (into the work directory, or `--restore-to DIR`, e.g. a tmpfs).
4. full backups against `tar | zstd -T0 -3`, on the bench tree and on the
   text-heavy tree (`gen_dataset.py --kind text`).
5. with `--million`: peak RSS of a full and an incremental run of a tree of
   1,000,000 tiny files (created in /dev/shm when it has the room; slow).

restic and borg come from `make bench-setup`; a missing one is skipped. restic
always encrypts its repository; borg runs unencrypted (`-e none`) with
`--compression zstd,3`, vigil unencrypted, as configured by `files_job`.
Peak RSS is the largest of the command's processes (wait4's ru_maxrss).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from bench_backup import dataset, files_job, timed, tree_bench, tree_size, versus_tar  # noqa: E402
from gen_dataset import mutate  # noqa: E402

GOALS = {"incremental": 0.35, "no change": 0.25, "storage": 1.3, "restore": 1.3, "rss MiB": 150}
MILLION = 1_000_000


def options(ap: argparse.ArgumentParser) -> None:
    ap.add_argument("--million", action="store_true", help="also the 1,000,000-file tree (slow)")
    ap.add_argument("--million-dir", type=Path, help="where to create it (default: /dev/shm, else the work directory)")
    ap.add_argument("--restore-to", type=Path, help="restore under this directory (default: the work directory; "
                    "a tmpfs such as /dev/shm takes the disk's writeback out of the restore figures)")
    ap.add_argument("--skip", action="append", default=[], choices=["time", "storage", "restore", "tar"],
                    help="leave a part out (repeatable)")


def goal(name: str, value: float) -> str:
    return f"(goal <= {GOALS[name]:g}: {'met' if value <= GOALS[name] else 'MISSED'})"


def mib(kib: int) -> str:
    return f"{kib / 1024:.0f} MiB"


def sync() -> None:
    """No writeback of an earlier step inside the next timed command."""
    subprocess.run(["sync"], check=True)


def du(path: Path) -> int:
    """Bytes of the files under `path` (apparent size, what a bucket would bill)."""
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file() and not p.is_symlink())


class Vigil:
    """One job (files_job: the tree into `work`/dest, state in `work`/state) and its commands."""

    def __init__(self, exe: str, work: Path, tree: Path) -> None:
        work.mkdir(parents=True, exist_ok=True)
        self.exe, self.work, self.job = exe, work, files_job(work, tree)
        self.last: dict[str, object] = {}

    def run(self, *flags: str, kind: str) -> tuple[float, int]:
        """Time a `vigil run`; exits when the backup it made is not of `kind`, whose
        figure would be about something else."""
        took, rss = timed([self.exe, "-q", "--config", str(self.job), "run", *flags])
        made = self.newest()
        if made["kind"] != kind:
            sys.exit(f"expected a {kind} backup, vigil made a {made['kind']} one ({made['id']})")
        manifest = json.loads((self.work / "dest" / "bench" / str(made["id"]) / "manifest.json").read_text())
        self.last = next(a for a in manifest["artifacts"] if a["type"] == "files")
        return took, rss

    def stored(self) -> str:
        """What the last run's archive holds, from its manifest."""
        a = self.last
        return f"{a['entries']} entries, {a['unchanged']} of them carried over unstored, archive {int(str(a['size'])) / 1e6:.2f} MB"

    def newest(self) -> dict[str, object]:
        out = subprocess.run([self.exe, "--config", str(self.job), "list", "--json", "bench"],
                             check=True, capture_output=True, text=True).stdout
        backups: list[dict[str, object]] = json.loads(out)
        return max(backups, key=lambda b: str(b["started_at"]))

    def restore(self, backup_id: str, to: Path) -> tuple[float, int]:
        return timed([self.exe, "-q", "--config", str(self.job), "restore", "bench", backup_id,
                      "--source", "app", "--to", str(to)])


class Peer:
    """restic or borg backing one tree up into its own repository under `work`."""

    def __init__(self, name: str, work: Path, tree: Path) -> None:
        self.name, self.tree, self.repo = name, tree, work / f"{name}-repo"
        self.count = 0
        if name == "restic":
            os.environ.update(RESTIC_PASSWORD="bench", RESTIC_CACHE_DIR=str(work / "restic-cache"))
            subprocess.run(["restic", "-q", "-r", str(self.repo), "init", "--repository-version", "2"],
                           check=True, stdout=subprocess.DEVNULL)
        else:
            os.environ.update(BORG_BASE_DIR=str(work / "borg-home"), BORG_UNKNOWN_UNENCRYPTED_REPO_ACCESS_IS_OK="yes")
            subprocess.run(["borg", "init", "-e", "none", str(self.repo)], check=True)

    @staticmethod
    def available(name: str) -> bool:
        if shutil.which(name) is None:
            print(f"  {name}: not installed, skipped (make bench-setup installs it)")
            return False
        return True

    def backup(self) -> tuple[float, int]:
        self.count += 1
        if self.name == "restic":
            return timed(["restic", "-q", "-r", str(self.repo), "backup", "--host", "bench", str(self.tree)])
        return timed(f"cd '{self.tree}' && borg create --compression zstd,3 '{self.repo}::s{self.count}' .",
                     shell=True)


def copy_tree(src: Path, dst: Path) -> Path:
    dst.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run(["cp", "-a", str(src), str(dst)], check=True)  # keeps the hard link and the symlink
    return dst


def report(title: str, rows: dict[str, list[tuple[float, int]]]) -> dict[str, float]:
    """Print medians and peak RSS of each command; return the medians."""
    med = {k: statistics.median(t for t, _ in v) for k, v in rows.items() if v}
    print(title)
    for k, v in rows.items():
        if v:
            print(f"  {k:<32} {med[k]:7.2f} s   peak RSS {mib(max(r for _, r in v))}")
    return med


def part_time(args: argparse.Namespace, work: Path) -> None:
    """Full, incremental after one day, no change: vigil against restic, alternating."""
    tree = copy_tree(args.data, work / "tree")
    vigil = Vigil(args.vigil, work, tree)
    peers = [Peer("restic", work, tree)] if Peer.available("restic") else []
    rows: dict[str, list[tuple[float, int]]] = {k: [] for k in (
        "vigil run --full", "vigil run (one day changed)", "vigil run (no change)",
        "restic backup (first)", "restic backup (one day changed)", "restic backup (no change)")}
    stored: dict[str, str] = {}
    for i in range(args.repeat):
        sync()
        rows["vigil run --full"].append(vigil.run("--full", kind="full"))
        for peer in peers if i == 0 else []:
            sync()
            rows["restic backup (first)"].append(peer.backup())
        print(f"  day {i + 1}: {mutate(tree, i + 1, args.scale)}", file=sys.stderr)
        order = ["vigil run", *(["restic backup"] if peers else [])]
        for what in ("one day changed", "no change"):
            for name in order if i % 2 == 0 else order[::-1]:
                sync()
                rows[f"{name} ({what})"].append(vigil.run(kind="incremental") if name == "vigil run"
                                                 else peers[0].backup())
            stored[what] = vigil.stored()
        print(f"round {i + 1}: " + ", ".join(f"{k} {v[-1][0]:.2f}s" for k, v in rows.items() if len(v) > i), file=sys.stderr)
    files, size = tree_size(tree)
    med = report(f"time: {files} files, {size / 1e6:.0f} MB, one day = mutate(); {args.repeat} rounds, medians:", rows)
    for what, line in stored.items():
        print(f"  vigil's last {what} run: {line}")
    full = med["vigil run --full"]
    inc, same = med["vigil run (one day changed)"], med["vigil run (no change)"]
    print(f"  vigil incremental / full        = {inc / full:.3f} {goal('incremental', inc / full)}")
    print(f"  vigil no change / full          = {same / full:.3f} {goal('no change', same / full)}")
    if peers:
        print(f"  vigil / restic, one day changed = {inc / med['restic backup (one day changed)']:.2f}")
        print(f"  vigil / restic, no change       = {same / med['restic backup (no change)']:.2f}")
    rss = max(r for _, r in rows["vigil run (one day changed)"])
    print(f"  vigil incremental peak RSS      = {mib(rss)} {goal('rss MiB', rss / 1024)}")


def part_storage_restore(args: argparse.Namespace, work: Path) -> None:
    """A full and seven daily incrementals in vigil, restic and borg; then restore the
    seventh incremental against a full of the same state."""
    tree = copy_tree(args.data, work / "tree")
    vigil = Vigil(args.vigil, work, tree)
    peers = {n: Peer(n, work, tree) for n in ("restic", "borg") if Peer.available(n)}
    names = ["vigil", *peers]
    times: dict[str, list[float]] = {name: [] for name in names}
    first: dict[str, tuple[float, int]] = {}

    def repo(name: str) -> Path:
        return vigil.work / "dest" if name == "vigil" else peers[name].repo

    for day in range(8):
        if day:
            print(f"  day {day}: {mutate(tree, day, args.scale)}", file=sys.stderr)
        for name in names[day % len(names):] + names[:day % len(names)]:  # who goes first rotates
            sync()
            took, _ = vigil.run(kind="incremental" if day else "full") if name == "vigil" else peers[name].backup()
            times[name].append(took)
            if not day:
                first[name] = (took, du(repo(name)))
    print(f"storage: one full, then seven days each mutated and backed up ({', '.join(times)}):")
    full = first["vigil"][1]
    total = du(vigil.work / "dest")
    print(f"  {'':<8} {'first backup':>14} {'after 8':>10}  growth   first run, median of days 1-7")
    for name in times:
        size = du(repo(name))
        print(f"  {name:<8} {first[name][1] / 1e6:11.1f} MB {size / 1e6:7.1f} MB  {size / first[name][1]:5.2f}x"
              f"   {first[name][0]:6.2f} s, {statistics.median(times[name][1:]):5.2f} s")
    print(f"  vigil destination after 8 / its full = {total / full:.3f} {goal('storage', total / full)}")
    print(f"  (vigil's local index cache in state_dir, not on the destination: {du(work / 'state') / 1e6:.1f} MB)")
    if "restore" not in args.skip:
        part_restore(args, vigil, tree, work)


def part_restore(args: argparse.Namespace, vigil: Vigil, tree: Path, work: Path) -> None:
    incremental = vigil.newest()
    vigil.run("--full", kind="full")
    full = vigil.newest()
    rows: dict[str, list[tuple[float, int]]] = {"restore the 7th incremental": [], "restore a full of it": []}
    targets = list(zip(rows, (str(incremental["id"]), str(full["id"])), strict=True))
    for i in range(args.repeat):
        for name, backup_id in targets if i % 2 == 0 else targets[::-1]:
            to = (args.restore_to or work) / f"vigil-restored-{os.getpid()}"
            shutil.rmtree(to, ignore_errors=True)
            sync()
            rows[name].append(vigil.restore(backup_id, to))
            if i == 0:  # a bench that restored the wrong tree would time nothing useful
                subprocess.run(["diff", "-rq", "--no-dereference", str(tree), str(to)], check=True)
        print(f"round {i + 1}: " + ", ".join(f"{k} {v[-1][0]:.2f}s" for k, v in rows.items() if v), file=sys.stderr)
    shutil.rmtree(to, ignore_errors=True)
    med = report(f"restore into {args.restore_to or 'the work directory'} (a chain of 8 archives vs one): "
                 f"{args.repeat} rounds, medians:", rows)
    ratio = med["restore the 7th incremental"] / med["restore a full of it"]
    print(f"  incremental / full restore = {ratio:.3f} {goal('restore', ratio)}")


def part_tar(args: argparse.Namespace, work: Path, job: Path) -> None:
    """Full runs against tar | zstd, as bench_backup.py times them, on both kinds of tree."""
    trees = {"bench tree": (args.data, work, job)}
    text = dataset(args.scale, "text")
    (work / "text").mkdir(exist_ok=True)
    trees["text-heavy tree"] = (text, work / "text", files_job(work / "text", text))
    for label, (data, where, j) in trees.items():
        med, rss = versus_tar(data, where, j, args.vigil, args.repeat, gzip=False)
        files, size = tree_size(data)
        print(f"full run vs tar | zstd, {label}: {files} files, {size / 1e6:.0f} MB; {args.repeat} rounds, medians:")
        for k, v in med.items():
            print(f"  {k:<20} {v:7.2f} s")
        print(f"  vigil / tar|zstd = {med['vigil run'] / med['tar | zstd -T0 -3']:.2f}, vigil peak RSS {mib(rss)}")


def million_tree(root: Path) -> None:
    """1,000 directories of 1,000 files of a few bytes each."""
    for d in range(1000):
        os.makedirs(root / f"d{d:03d}", exist_ok=True)
        for f in range(1000):
            fd = os.open(root / f"d{d:03d}" / f"f{f:03d}", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
            os.write(fd, b"%d\n" % (d * 1000 + f))
            os.close(fd)


def part_million(args: argparse.Namespace, work: Path) -> None:
    where = args.million_dir
    if where is None:
        shm = os.statvfs("/dev/shm") if os.path.isdir("/dev/shm") else None
        where = Path("/dev/shm") if shm is not None and shm.f_favail > 2 * MILLION else work
    root = Path(where) / f"vigil-million-{os.getpid()}"
    try:
        start = time.perf_counter()
        million_tree(root)
        print(f"  created {MILLION} files in {root} in {time.perf_counter() - start:.0f} s", file=sys.stderr)
        vigil = Vigil(args.vigil, work / "million", root)
        sync()
        full = vigil.run("--full", kind="full")
        for n in range(0, MILLION, MILLION // 100):  # 100 files changed
            with open(root / f"d{n // 1000:03d}" / f"f{n % 1000:03d}", "ab") as fh:
                fh.write(b"changed\n")
        sync()
        inc = vigil.run(kind="incremental")
        changed = vigil.stored()
        same = vigil.run(kind="incremental")
        print(f"1,000,000 tiny files ({root.parent}): one run each")
        for name, (took, rss) in (("vigil run --full", full), ("vigil run (100 changed)", inc),
                                  ("vigil run (no change)", same)):
            print(f"  {name:<32} {took:7.2f} s   peak RSS {mib(rss)}")
        print(f"  the incremental after 100 changes: {changed}")
        print(f"  incremental peak RSS = {mib(max(inc[1], same[1]))} {goal('rss MiB', max(inc[1], same[1]) / 1024)}")
        print(f"  destination {du(vigil.work / 'dest') / 1e6:.0f} MB, index cache {du(vigil.work / 'state') / 1e6:.0f} MB")
    finally:
        shutil.rmtree(root, ignore_errors=True)


def main() -> None:
    sys.stdout.reconfigure(line_buffering=True)  # type: ignore[union-attr]  # results as each part ends
    args, work, job = tree_bench(__doc__, options)
    try:
        if "time" not in args.skip:
            part_time(args, work / "time")
            shutil.rmtree(work / "time")
        if "storage" not in args.skip:
            part_storage_restore(args, work / "storage")
            shutil.rmtree(work / "storage")
        if "tar" not in args.skip:
            part_tar(args, work, job)
        if args.million:
            part_million(args, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)  # also when a command failed


if __name__ == "__main__":
    main()
