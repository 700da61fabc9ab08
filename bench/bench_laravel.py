#!/usr/bin/env python3
"""From a Laravel app to its first backup: time `vigil init --laravel` and the first `vigil run`.

    python bench/bench_laravel.py [--mb 100] [--vigil PATH]

Starts a throw-away MariaDB on 127.0.0.1 (as the tests do), fills a Laravel-shaped
database of about --mb MB with the app account a Laravel install has (ALL on its
database), builds the app directory (artisan, .env, code, vendor/, logs), then runs
`vigil init --laravel` and `vigil run` as an operator would. Prints the wall time of
each, init's doctor verdict, and the number of manual edits the job file needed
before the run succeeded (the goal: zero).
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "tests"))
from bench_backup import default_vigil, precompile  # noqa: E402
from dbservers import start_mariadb  # noqa: E402

DB, USER, PASSWORD = "laravel", "laravel", "s3cret 'app' #pw"


def fill_database(server, mb: int) -> float:
    """Laravel's usual tables, `posts` holding ~mb MB of text; the database's size in MB."""
    server.root_sql(f"CREATE DATABASE {DB} CHARACTER SET utf8mb4")
    server.root_sql(f"CREATE USER '{USER}'@'%' IDENTIFIED BY '{PASSWORD.replace(chr(39), chr(39) * 2)}'; "
                    f"GRANT ALL ON {DB}.* TO '{USER}'@'%'")
    server.root_sql(
        "CREATE TABLE users (id BIGINT UNSIGNED AUTO_INCREMENT PRIMARY KEY, name VARCHAR(255), "
        "email VARCHAR(255) UNIQUE, password VARCHAR(255), created_at TIMESTAMP NULL); "
        "CREATE TABLE migrations (id INT UNSIGNED AUTO_INCREMENT PRIMARY KEY, migration VARCHAR(255), batch INT); "
        "CREATE TABLE jobs (id BIGINT UNSIGNED AUTO_INCREMENT PRIMARY KEY, queue VARCHAR(255), payload LONGTEXT, "
        "attempts TINYINT UNSIGNED, available_at INT UNSIGNED, created_at INT UNSIGNED); "
        "CREATE TABLE posts (id BIGINT UNSIGNED AUTO_INCREMENT PRIMARY KEY, user_id BIGINT UNSIGNED, "
        "title VARCHAR(255), body TEXT, created_at TIMESTAMP NULL, KEY (user_id)); "
        "INSERT INTO migrations (migration, batch) SELECT CONCAT('2024_01_01_00000', seq, '_create_table'), 1 "
        "FROM seq_1_to_9; "
        "INSERT INTO users (name, email, password, created_at) SELECT CONCAT('User ', seq), "
        "CONCAT('user', seq, '@example.com'), SHA2(seq, 256), NOW() FROM seq_1_to_10000", DB)
    rows = mb * 1000  # ~1 KB of body per post
    for start in range(1, rows + 1, 20000):
        end = min(start + 19999, rows)
        server.root_sql(
            f"INSERT INTO posts (user_id, title, body, created_at) SELECT 1 + seq % 10000, CONCAT('Post ', seq), "
            "CONCAT(SHA2(RAND(), 512), ' ', SHA2(RAND(), 512), ' ', MD5(seq), REPEAT(' lorem ipsum dolor', 40)), "
            f"NOW() FROM seq_{start}_to_{end}", DB)
    # InnoDB's sizes in information_schema are estimates refreshed by ANALYZE.
    server.root_sql("ANALYZE TABLE users, posts, jobs, migrations", DB)
    size = server.root_sql("SELECT SUM(data_length + index_length) FROM information_schema.tables "
                           f"WHERE table_schema = '{DB}'")
    return int(size) / 1e6


def laravel_app(root: Path, port: int) -> None:
    for d in ("app/Http/Controllers", "routes", "public", "vendor/laravel/framework/src", "storage/logs",
              "storage/framework/cache/data", "storage/framework/views", "bootstrap/cache", "database/migrations"):
        (root / d).mkdir(parents=True, exist_ok=True)
    (root / "artisan").write_text("#!/usr/bin/env php\n<?php\n")
    for i in range(200):
        (root / f"app/Http/Controllers/C{i}.php").write_text("<?php\n" + "// code\n" * 200)
        (root / f"vendor/laravel/framework/src/F{i}.php").write_text("<?php\n" + "// vendor\n" * 400)
    (root / "storage/logs/laravel.log").write_text("[2025-11-04 19:00:01] production.INFO: up\n" * 1000)
    (root / ".env").write_text(
        "APP_NAME=Laravel\nAPP_ENV=production\nAPP_KEY=base64:YmVuY2htYXJrYmVuY2htYXJrYmVuY2htYXJrMTI=\n"
        f"DB_CONNECTION=mysql\nDB_HOST=127.0.0.1\nDB_PORT={port}\nDB_DATABASE={DB}\nDB_USERNAME={USER}\n"
        f"DB_PASSWORD=\"{PASSWORD}\"\nMAIL_MAILER=smtp\nMAIL_HOST=127.0.0.1\nMAIL_PORT=2525\n"
        "MAIL_USERNAME=null\nMAIL_PASSWORD=null\nMAIL_ENCRYPTION=null\nMAIL_FROM_ADDRESS=\"hello@example.com\"\n")
    (root / ".env").chmod(0o600)


def timed(argv: list[str]) -> tuple[float, subprocess.CompletedProcess[str]]:
    start = time.perf_counter()
    proc = subprocess.run(argv, capture_output=True, text=True, check=False)
    return time.perf_counter() - start, proc


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--mb", type=int, default=100, help="database size to generate, MB")
    parser.add_argument("--vigil", default=default_vigil())
    args = parser.parse_args()
    precompile()
    work = Path(tempfile.mkdtemp(prefix="vigil-bench-laravel-"))
    server = start_mariadb()
    try:
        print(f"generating a ~{args.mb} MB database ...", file=sys.stderr)
        size = fill_database(server, args.mb)
        app = work / "var/www/laravel"
        laravel_app(app, server.port)
        job = work / "jobs/laravel.toml"
        init_s, init = timed([args.vigil, "init", "--laravel", str(app), "--notify-email", "ops@example.com",
                              "--output", str(job), "--state-dir", str(work / "state"),
                              "--backup-dir", str(work / "backups"), "--root", str(work / "root")])
        written = job.read_text() if job.exists() else ""
        edits = 1
        run_s, run = timed([args.vigil, "--config", str(job), "run"])
        edits = 0 if run.returncode == 0 and job.read_text() == written else 1
        stored = sum(p.stat().st_size for p in (work / "backups").rglob("*") if p.is_file())
        dump = subprocess.run(f"zstd -dc {work}/backups/*/*/db-db.sql.zst | wc -c", shell=True, capture_output=True,
                              text=True, check=False).stdout.strip()
        problems = [line.strip() for line in init.stdout.splitlines() if line.startswith("  PROBLEM")]
        print(f"database:              {size:.1f} MB in MariaDB (data + indexes)")
        print(f"vigil init --laravel:  {init_s:.2f} s (exit {init.returncode}; doctor problems: {len(problems)})")
        for line in problems:
            print(f"    {line}")
        print(f"first vigil run:       {run_s:.2f} s (exit {run.returncode}; SQL dump {int(dump or 0) / 1e6:.1f} MB, "
              f"{stored / 1e6:.1f} MB stored)")
        print(f"manual edits needed:   {edits}")
        if run.returncode != 0:
            print(run.stderr, file=sys.stderr)
    finally:
        server.stop()
        shutil.rmtree(server.dir, ignore_errors=True)
        shutil.rmtree(work, ignore_errors=True)
    sys.exit(0 if edits == 0 else 1)


if __name__ == "__main__":
    main()
