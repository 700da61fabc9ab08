#!/usr/bin/env python3
"""Generate a deterministic, realistic web-application tree for benchmarks and tests.

    python bench/gen_dataset.py DIR [--scale full|small] [--kind web|text]
    python bench/gen_dataset.py DIR --mutate DAY [--scale full|small]

web (default)
  full  (~34k files, ~580 MB): PHP/JS/Blade sources and vendor packages (many
        small, compressible files), a few large append-only logs, incompressible
        uploads (images, PDFs) and a SQLite database.
  small (~600 files, ~6 MB): the same shape, for tests (round trips).
text: the same sources, ten logs instead of four and only a few small uploads:
  mostly compressible bytes (full ~33k files, ~555 MB; small ~500 files, ~9 MB).
Same seed, same bytes: runs are comparable across machines and commits.

--mutate DAY applies one day of changes to an existing tree (see `mutate`):
the same seed, day and starting tree give the same changes.
"""

from __future__ import annotations

import argparse
import os
import random
import sqlite3
import stat
import sys
from pathlib import Path

SCALES = {
    #        source files, log count x MiB each, uploads (count, max KiB)
    "full": dict(sources=33_000, logs=(4, 40), uploads=(700, 600)),
    "small": dict(sources=500, logs=(2, 1), uploads=(40, 64)),
}
# Text-heavy: what compresses well dominates (the web kind is ~40% incompressible uploads).
TEXT_SCALES = {
    "full": dict(sources=33_000, logs=(10, 40), uploads=(30, 600)),
    "small": dict(sources=500, logs=(6, 1), uploads=(4, 64)),
}
KINDS = {"web": SCALES, "text": TEXT_SCALES}
# One day of changes (see `mutate`), per scale: files edited in place (same size),
# files grown, files created, files deleted, KiB appended to the day's log.
DAYS = {
    "full": dict(same_size=200, grown=100, created=20, deleted=10, log_kib=2048),
    "small": dict(same_size=4, grown=2, created=2, deleted=1, log_kib=16),
}
WORDS = ("public function return $this->request user order invoice payment customer "
         "namespace use App\\Models Illuminate\\Support\\Facades\\DB if else foreach "
         "array string int null true false protected private static const query where "
         "select insert update delete join limit offset json response status message").split()


def source_text(rng: random.Random, lines: int) -> bytes:
    out = ["<?php", "", f"namespace App\\{rng.choice(['Http', 'Models', 'Services', 'Jobs'])};", ""]
    for _ in range(lines):
        indent = "    " * rng.randint(0, 3)
        out.append(indent + " ".join(rng.choice(WORDS) for _ in range(rng.randint(2, 12))) + ";")
    return ("\n".join(out) + "\n").encode()


def log_line(rng: random.Random, day: str = "2025-11-04") -> bytes:
    return (f"[{day} 19:{rng.randint(0, 59):02d}:{rng.randint(0, 59):02d}] production.INFO: "
            f"{' '.join(rng.choice(WORDS) for _ in range(10))} "
            f"{{\"user_id\":{rng.randint(1, 99999)}}}\n").encode()


def generate(root: Path, scale: str = "full", seed: int = 1, kind: str = "web") -> None:
    cfg = KINDS[kind][scale]
    rng = random.Random(seed)
    root.mkdir(parents=True, exist_ok=True)
    dirs = ["app/Http/Controllers", "app/Models", "app/Services", "resources/views", "resources/js",
            "config", "routes", "database/migrations"]
    vendor = [f"vendor/{v}/{p}/src" for v in ("laravel", "symfony", "guzzlehttp", "monolog", "nesbot")
              for p in ("framework", "http-kernel", "console", "support", "psr7", "carbon")]
    all_dirs = dirs + vendor + ["node_modules/lodash", "node_modules/axios/lib"]
    for i in range(cfg["sources"]):
        d = all_dirs[i % len(all_dirs)] + ("" if i % 7 else f"/sub{i % 13}")
        ext = rng.choice([".php", ".php", ".php", ".js", ".blade.php", ".json"])
        path = root / d / f"File{i:05d}{ext}"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(source_text(rng, rng.randint(5, 120)))
    logs = root / "storage/logs"
    logs.mkdir(parents=True, exist_ok=True)
    count, mib = cfg["logs"]
    for i in range(count):
        with open(logs / f"laravel-{i}.log", "wb") as fh:
            written = 0
            while written < mib << 20:
                line = log_line(rng)
                fh.write(line)
                written += len(line)
    uploads = root / "storage/app/public/uploads"
    count, max_kib = cfg["uploads"]
    for i in range(count):
        path = uploads / f"{i % 20:02d}" / f"upload-{i:05d}.{rng.choice(['jpg', 'png', 'pdf'])}"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(rng.randbytes(rng.randint(1, max_kib) * 1024))
    # Links and an empty directory: what real trees have and archivers get wrong.
    (root / "storage/framework/cache").mkdir(parents=True, exist_ok=True)
    os.symlink("../storage/app/public", root / "public_storage_link") if not (root / "public_storage_link").is_symlink() else None
    if not (root / "config/app.hardlink.php").exists():
        os.link(next((root / "config").glob("*.php")), root / "config/app.hardlink.php")
    db = sqlite3.connect(root / "database/database.sqlite")
    db.execute("CREATE TABLE IF NOT EXISTS users (id INTEGER PRIMARY KEY, email TEXT, name TEXT)")
    db.executemany("INSERT OR REPLACE INTO users VALUES (?, ?, ?)",
                   [(i, f"user{i}@example.com", f"User {i}") for i in range(cfg["sources"] // 10)])
    db.commit()
    db.close()


TEXT_EXT = (".php", ".js", ".json", ".log")


def tree_files(root: Path) -> list[Path]:
    """The tree's regular files a day may edit or delete, in a stable order: not logs (the
    app writes a new one each day), not the SQLite file. (By name, not by link count:
    a copy that lost the hard link gets the same day.)"""
    out = []
    for d, dirs, files in os.walk(root):
        dirs.sort()
        if Path(d).relative_to(root).parts[:2] == ("storage", "logs"):
            continue
        for name in sorted(files):
            path = Path(d, name)
            st = path.lstat()
            if stat.S_ISREG(st.st_mode) and name != "database.sqlite":
                out.append(path)
    return out


def _filler(rng: random.Random, path: Path, size: int) -> bytes:
    """`size` bytes like the file's own: words for text, random bytes for uploads."""
    if not path.name.endswith(TEXT_EXT):
        return rng.randbytes(size)
    text = b""
    while len(text) < size:
        text += (" ".join(rng.choice(WORDS) for _ in range(8)) + ";\n").encode()
    return text[:size]


def _edit_same_size(rng: random.Random, path: Path) -> None:
    size = path.stat().st_size
    span = min(size, rng.randint(16, 512))
    with open(path, "r+b") as fh:
        fh.seek(rng.randint(0, size - span))
        fh.write(_filler(rng, path, span))


def _grow(rng: random.Random, path: Path) -> int:
    added = rng.randint(64, 4096) if path.name.endswith(TEXT_EXT) else rng.randint(1, 64) * 1024
    with open(path, "ab") as fh:
        fh.write(_filler(rng, path, added))
    return added


def mutate(root: Path, day: int, scale: str = "full", seed: int = 1) -> dict[str, int]:
    """One day of changes to a generated tree: files edited in place keeping their size,
    files grown, new sources and uploads, one new daily log, files deleted (DAYS says
    how many). The same seed, day and starting tree give the same changes, so apply days
    1, 2, 3 ... in order to a freshly generated tree. Returns what it did."""
    cfg = DAYS[scale]
    rng = random.Random(f"{seed}:mutate:{day}")
    files = tree_files(root)
    picks = rng.sample(files, cfg["same_size"] + cfg["grown"] + cfg["deleted"])
    edited, grown, deleted = (picks[:cfg["same_size"]], picks[cfg["same_size"]:-cfg["deleted"]],
                              picks[-cfg["deleted"]:])
    added = 0
    for path in edited:
        _edit_same_size(rng, path)
    for path in grown:
        added += _grow(rng, path)
    for path in deleted:
        path.unlink()
    sources = sorted({p.parent for p in files if p.suffix == ".php"})
    max_kib = SCALES[scale]["uploads"][1]
    created = cfg["created"] - 1  # and the day's log
    for i in range(created):
        if i % 4 == 3:
            path = root / f"storage/app/public/uploads/{i % 20:02d}/upload-d{day:03d}-{i:02d}.jpg"
            body = rng.randbytes(rng.randint(1, max_kib) * 1024)
        else:
            path = rng.choice(sources) / f"New{day:03d}{i:02d}.php"
            body = source_text(rng, rng.randint(5, 120))
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(body)
        added += len(body)
    with open(root / f"storage/logs/laravel-day{day:03d}.log", "wb") as fh:
        written = 0
        while written < cfg["log_kib"] << 10:
            written += fh.write(log_line(rng, f"2025-12-{day % 28 + 1:02d}"))
    return dict(edited=len(edited), grown=len(grown), created=created + 1, deleted=len(deleted),
                bytes_added=added + written)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("dir", type=Path)
    ap.add_argument("--scale", choices=sorted(SCALES), default="full")
    ap.add_argument("--kind", choices=sorted(KINDS), default="web")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--mutate", type=int, metavar="DAY", help="apply day DAY's changes to the existing tree DIR")
    args = ap.parse_args()
    if args.mutate is None:
        generate(args.dir, args.scale, args.seed, args.kind)
    elif not args.dir.is_dir():
        sys.exit(f"--mutate: {args.dir} is not a generated tree")
    else:
        print(mutate(args.dir, args.mutate, args.scale, args.seed))


if __name__ == "__main__":
    main()
