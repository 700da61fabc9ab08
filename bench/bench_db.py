#!/usr/bin/env python3
"""Time `vigil run` of a postgres and a mysql source against `dump | zstd`, in the same run.

    python bench/bench_db.py [--rows 1000000] [--repeat 3]

Starts throw-away PostgreSQL and MariaDB servers (as the tests do), one after the other, fills
each with a realistic orders table (names, e-mails, addresses, amounts,
statuses, JSON notes: text that compresses like real data, not padding), then
alternates `pg_dump -Fc -Z0 | zstd -T0 -3 > file` with `vigil run`, and
`mariadb-dump --single-transaction ... | zstd -T0 -3 > file` with `vigil run`.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "tests"))
from bench_backup import default_vigil, precompile, timed  # noqa: E402
from dbservers import MY_PASSWORD, PG_PASSWORD, _pg_bin, start_mariadb, start_postgres  # noqa: E402

PG_FILL = """
CREATE TABLE orders (id bigint PRIMARY KEY, customer text, email text, address text, amount_cents integer,
  status text, created_at timestamptz, notes jsonb);
INSERT INTO orders SELECT g,
  (ARRAY['Anna','Ben','Chloé','Dmitri','Eva','Farid','Grace','Hiro'])[1 + g % 8] || ' ' ||
  (ARRAY['Müller','Smith','Nguyen','García','Rossi','Kowalski'])[1 + (g / 8) % 6],
  'user' || (g % 50000) || '@example.' || (ARRAY['com','de','fr','io'])[1 + g % 4],
  (g % 999) + 1 || ' ' || (ARRAY['Main St','Hauptstraße','Rue de la Paix','Elm Rd'])[1 + g % 4] || ', ' ||
  lpad(((g::bigint * 7919) % 99999)::text, 5, '0'),
  (g::bigint * 7919) % 100000,
  (ARRAY['paid','shipped','refunded','pending'])[1 + (g / 3) % 4],
  timestamptz '2024-01-01' + (g || ' minutes')::interval,
  jsonb_build_object('items', 1 + g % 5, 'coupon', CASE WHEN g % 7 = 0 THEN md5(g::text) END,
                     'channel', (ARRAY['web','app','api'])[1 + g % 3])
FROM generate_series(1, {rows}) g;
"""
MY_FILL = """
CREATE TABLE orders (id BIGINT PRIMARY KEY, customer VARCHAR(100), email VARCHAR(100), address VARCHAR(200),
  amount_cents INT, status VARCHAR(20), created_at DATETIME, notes JSON) ENGINE=InnoDB CHARACTER SET utf8mb4;
INSERT INTO orders SELECT seq,
  CONCAT(ELT(1 + seq % 8, 'Anna','Ben','Chloé','Dmitri','Eva','Farid','Grace','Hiro'), ' ',
         ELT(1 + (seq DIV 8) % 6, 'Müller','Smith','Nguyen','García','Rossi','Kowalski')),
  CONCAT('user', seq % 50000, '@example.', ELT(1 + seq % 4, 'com','de','fr','io')),
  CONCAT(seq % 999 + 1, ' ', ELT(1 + seq % 4, 'Main St','Hauptstraße','Rue de la Paix','Elm Rd'), ', ',
         LPAD((seq * 7919) % 99999, 5, '0')),
  (seq * 7919) % 100000, ELT(1 + (seq DIV 3) % 4, 'paid','shipped','refunded','pending'),
  '2024-01-01' + INTERVAL seq MINUTE,
  JSON_OBJECT('items', 1 + seq % 5, 'coupon', IF(seq % 7 = 0, MD5(seq), NULL),
              'channel', ELT(1 + seq % 3, 'web','app','api'))
FROM seq_1_to_{rows};
"""


def bench(label: str, baseline: str, job: Path, vigil: str, repeat: int, work: Path) -> tuple[float, float]:
    base, ours = [], []
    for i in range(repeat):
        # sync first: vigil fsyncs its artifact, and on ext4 (data=ordered) that also writes
        # out whatever the command before it left dirty, such as the baseline's output.
        subprocess.run(["sync"])
        base.append(timed(baseline, shell=True)[0])
        shutil.rmtree(work / "dest", ignore_errors=True)
        subprocess.run(["sync"])
        ours.append(timed([vigil, "-q", "--config", str(job), "run"])[0])
        print(f"{label} round {i + 1}: dump | zstd {base[-1]:.2f}s, vigil {ours[-1]:.2f}s", file=sys.stderr)
    return statistics.median(base), statistics.median(ours)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--vigil", default=default_vigil())
    args = ap.parse_args()
    precompile()
    work = Path(tempfile.mkdtemp(prefix="vigil-bench-db-"))
    results = {}
    try:
        # One engine at a time: a server still flushing its own bulk load in the
        # background would slow the other engine's rounds (vigil's fsync above all).
        for kind in ("postgres", "mysql"):
            results[kind] = bench_engine(kind, args, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(f"{args.rows} orders; {args.repeat} rounds, medians:")
    for kind, (size, base, ours) in results.items():
        print(f"  {kind:<9} database {size / 1e6:.0f} MB: dump | zstd -T0 -3 {base:.2f} s, vigil run {ours:.2f} s,"
              f" ratio {ours / base:.2f} (target <= 1.1)")


def bench_engine(kind: str, args: argparse.Namespace, work: Path) -> tuple[int, float, float]:
    """Start and fill one server, time its rounds, stop it."""
    server = start_postgres() if kind == "postgres" else start_mariadb()
    try:
        if kind == "postgres":
            server.psql("CREATE DATABASE shop")
            server.psql(PG_FILL.format(rows=args.rows), "shop")
            # A table in service has been vacuumed; a freshly loaded one would
            # have autovacuum running through the first rounds, on the same cores.
            server.psql("VACUUM ANALYZE", "shop")
            os.environ["BENCH_PGPASS"] = PG_PASSWORD
            conn = (f'host = "127.0.0.1"\nport = {server.port}\nuser = "postgres"\n'
                    f'password_env = "BENCH_PGPASS"\ndatabase = "shop"\n')
            baseline = (f"PGPASSWORD='{PG_PASSWORD}' {_pg_bin('pg_dump')} -h 127.0.0.1 -p {server.port} "
                        f"-U postgres -Fc -Z0 shop | zstd -q -T0 -3 > {work}/base.zst")
            size = server.psql("SELECT pg_database_size('shop')")
        else:
            server.root_sql("CREATE DATABASE shop CHARACTER SET utf8mb4")
            server.root_sql(MY_FILL.format(rows=args.rows), "shop")
            (work / "mypass").write_text(MY_PASSWORD)
            conn = (f'host = "127.0.0.1"\nport = {server.port}\nuser = "{server.user}"\n'
                    f'password_file = "{work}/mypass"\ndatabase = "shop"\n')
            baseline = (f"mariadb-dump --no-defaults --socket={server.socket} -uroot --single-transaction --quick "
                        f"--routines --triggers --events --hex-blob shop | zstd -q -T0 -3 > {work}/base.zst")
            size = server.root_sql("SELECT SUM(data_length + index_length) FROM information_schema.tables "
                                   "WHERE table_schema = 'shop'")
        job = work / f"{kind}.toml"
        job.write_text(f'name = "{kind}"\nstate_dir = "{work}/state"\n[[source]]\ntype = "{kind}"\n'
                       f'name = "db"\n{conn}[[destination]]\ntype = "local"\npath = "{work}/dest"\n')
        return (int(size), *bench(kind, baseline, job, args.vigil, args.repeat, work))
    finally:
        server.stop()
        shutil.rmtree(server.dir, ignore_errors=True)

if __name__ == "__main__":
    main()
