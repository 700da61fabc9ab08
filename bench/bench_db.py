#!/usr/bin/env python3
"""Time `vigil run` of a postgres and a mysql source against `dump | zstd`, in the same run.

    python bench/bench_db.py [--rows 1000000] [--repeat 5] [--engine postgres|mysql]

Starts throw-away PostgreSQL and MariaDB servers (as the tests do), one after the other, fills
each with a realistic orders table (names, e-mails, addresses, amounts,
statuses, JSON notes: text that compresses like real data, not padding), then
alternates `pg_dump -Fc -Z0 | zstd -T0 -3 > file` with `vigil run`, and
`mariadb-dump --single-transaction ... | zstd -T0 -3 > file` (vigil's options,
user and connection) with `vigil run`,
after one warm-up round and in alternating order. Besides wall time it prints
the CPU seconds the whole machine worked during each command (database server
included) and the time the shared host stole: on a noisy machine the CPU
figure says whether vigil does more work, the steal why a round was slow.
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
from bench_backup import default_vigil, machine_cpu, precompile, timed  # noqa: E402
from dbservers import MY_PASSWORD, PG_PASSWORD, _pg_bin, start_mariadb, start_postgres  # noqa: E402

from vigil.config.load import load_job_file  # noqa: E402
from vigil.sources.db.mysql import DUMP_OPTIONS, Mysql  # noqa: E402

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


def bench(label: str, baseline: str, job: Path, vigil: str, repeat: int, work: Path) -> dict[str, list[float]]:
    """Wall and machine CPU seconds of both commands, `repeat` rounds after a warm-up round.

    The order alternates from round to round, so that load drifting on the
    shared host favours neither command."""
    commands = {"base": (baseline, True), "vigil": ([vigil, "-q", "--config", str(job), "run"], False)}
    got: dict[str, list[float]] = {k: [] for k in ("base", "vigil", "base_cpu", "vigil_cpu", "steal")}
    for i in range(repeat + 1):
        for name in ("base", "vigil") if i % 2 else ("vigil", "base"):
            cmd, shell = commands[name]
            shutil.rmtree(work / "dest", ignore_errors=True)
            # sync first: vigil fsyncs its artifact, and on ext4 (data=ordered) that also writes
            # out whatever the command before it left dirty, such as the baseline's output.
            subprocess.run(["sync"])
            cpu, steal = machine_cpu()
            took = timed(cmd, shell=shell)[0]
            cpu_after, steal_after = machine_cpu()
            if i:  # round 0 warms caches and the server up
                got[name].append(took)
                got[f"{name}_cpu"].append(cpu_after - cpu)
                got["steal"].append(steal_after - steal)
        if i:
            print(f"{label} round {i}: dump | zstd {got['base'][-1]:.2f}s ({got['base_cpu'][-1]:.2f} CPU-s), "
                  f"vigil {got['vigil'][-1]:.2f}s ({got['vigil_cpu'][-1]:.2f} CPU-s), "
                  f"stolen {got['steal'][-2] + got['steal'][-1]:.2f}s", file=sys.stderr)
    return got


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--vigil", default=default_vigil())
    ap.add_argument("--engine", action="append", choices=("postgres", "mysql"),
                    help="only this engine (repeatable; default: both)")
    args = ap.parse_args()
    precompile()
    work = Path(tempfile.mkdtemp(prefix="vigil-bench-db-"))
    results = {}
    try:
        # One engine at a time: a server still flushing its own bulk load in the
        # background would slow the other engine's rounds (vigil's fsync above all).
        for kind in args.engine or ("postgres", "mysql"):
            results[kind] = bench_engine(kind, args, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(f"{args.rows} orders; {args.repeat} rounds after a warm-up, medians:")
    for kind, (size, t) in results.items():
        base, ours = statistics.median(t["base"]), statistics.median(t["vigil"])
        paired = statistics.median(v / b for v, b in zip(t["vigil"], t["base"], strict=False))
        print(f"  {kind:<9} database {size / 1e6:.0f} MB: dump | zstd -T0 -3 {base:.2f} s, vigil run {ours:.2f} s,"
              f" ratio {ours / base:.2f} (target <= 1.1), paired {paired:.2f};"
              f" machine CPU {statistics.median(t['base_cpu']):.2f} vs {statistics.median(t['vigil_cpu']):.2f} s;"
              f" stolen by the host {sum(t['steal']):.1f} s in all")


def bench_engine(kind: str, args: argparse.Namespace, work: Path) -> tuple[int, dict[str, list[float]]]:
    """Start and fill one server, time its rounds, stop it."""
    server = start_postgres() if kind == "postgres" else start_mariadb()
    try:
        if kind == "postgres":
            server.psql("CREATE DATABASE shop")
            server.psql(PG_FILL.format(rows=args.rows), "shop")
            # A table in service has been vacuumed; a freshly loaded one would
            # have autovacuum running through the first rounds, on the same cores.
            server.psql("VACUUM ANALYZE", "shop")
            # Nor is it writing out a bulk load: the checkpointer would spread that over
            # the rounds, and only vigil waits for its own fsync behind those writes.
            server.psql("CHECKPOINT", "shop")
            os.environ["BENCH_PGPASS"] = PG_PASSWORD
            conn = (f'host = "127.0.0.1"\nport = {server.port}\nuser = "postgres"\n'
                    f'password_env = "BENCH_PGPASS"\ndatabase = "shop"\n')
            baseline = (f"PGPASSWORD='{PG_PASSWORD}' {_pg_bin('pg_dump')} -h 127.0.0.1 -p {server.port} "
                        f"-U postgres -Fc -Z0 shop | zstd -q -T0 -3 > {work}/base.zst")
            size = server.psql("SELECT pg_database_size('shop')")
        else:
            server.root_sql("CREATE DATABASE shop CHARACTER SET utf8mb4")
            server.root_sql(MY_FILL.format(rows=args.rows), "shop")
            server.root_sql("ANALYZE TABLE orders", "shop")  # else information_schema's size below reads 0
            server.root_sql("FLUSH TABLES orders FOR EXPORT; UNLOCK TABLES", "shop")  # the load's pages on disk
            (work / "mypass").write_text(MY_PASSWORD)
            conn = (f'host = "127.0.0.1"\nport = {server.port}\nuser = "{server.user}"\n'
                    f'password_file = "{work}/mypass"\ndatabase = "shop"\n')
            size = server.root_sql("SELECT SUM(data_length + index_length) FROM information_schema.tables "
                                   "WHERE table_schema = 'shop'")
        job = work / f"{kind}.toml"
        job.write_text(f'name = "{kind}"\nstate_dir = "{work}/state"\n[[source]]\ntype = "{kind}"\n'
                       f'name = "db"\n{conn}[[destination]]\ntype = "local"\npath = "{work}/dest"\n')
        if kind == "postgres":
            return int(size), bench(kind, baseline, job, args.vigil, args.repeat, work)
        # The same user, connection and options as vigil's dump, from vigil's own option file:
        # as root over the socket, the same dump ran 0.4-0.7 s slower here, which flattered vigil.
        with Mysql(load_job_file(job).source_named("db"), work, "bench").defaults() as client:
            baseline = f"mariadb-dump {client} {' '.join(DUMP_OPTIONS)} shop | zstd -q -T0 -3 > {work}/base.zst"
            return int(size), bench(kind, baseline, job, args.vigil, args.repeat, work)
    finally:
        server.stop()
        shutil.rmtree(server.dir, ignore_errors=True)


if __name__ == "__main__":
    main()
