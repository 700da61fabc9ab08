#!/usr/bin/env python3
"""Generate a deterministic, realistic web-application tree for benchmarks and tests.

    python bench/gen_dataset.py DIR [--scale full|small]

full  (~34k files, ~580 MB): PHP/JS/Blade sources and vendor packages (many
      small, compressible files), a few large append-only logs, incompressible
      uploads (images, PDFs) and a SQLite database.
small (~600 files, ~6 MB): the same shape, for tests (round trips).
Same seed, same bytes: runs are comparable across machines and commits.
"""

from __future__ import annotations

import argparse
import os
import random
import sqlite3
from pathlib import Path

SCALES = {
    #        source files, log MiB each x count, uploads (count, max KiB)
    "full": dict(sources=33_000, logs=(4, 40), uploads=(700, 600)),
    "small": dict(sources=500, logs=(2, 1), uploads=(40, 64)),
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


def generate(root: Path, scale: str = "full", seed: int = 1) -> None:
    cfg = SCALES[scale]
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
                line = (f"[2025-11-04 19:{rng.randint(0, 59):02d}:{rng.randint(0, 59):02d}] production.INFO: "
                        f"{' '.join(rng.choice(WORDS) for _ in range(10))} "
                        f"{{\"user_id\":{rng.randint(1, 99999)}}}\n").encode()
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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("dir", type=Path)
    ap.add_argument("--scale", choices=sorted(SCALES), default="full")
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    generate(args.dir, args.scale, args.seed)


if __name__ == "__main__":
    main()
