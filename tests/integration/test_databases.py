"""PostgreSQL and MariaDB sources against real servers started by the fixtures."""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import textwrap
import threading
import time
from pathlib import Path

import pytest
import zstandard
from dbservers import MY_PASSWORD, PG_PASSWORD
from helpers import VIGIL, age_keygen, committed, vigil, vigil_json, wait_for_step
from servers import free_port


def db_job(make_job, tmp_path: Path, kind: str, credentials: str, db: str, port: int, extra: str = "") -> Path:
    return make_job(textwrap.dedent(f"""
        [[source]]
        type = "{kind}"
        name = "db"
        host = "127.0.0.1"
        port = {port}
        {credentials}
        database = "{db}"
        [[destination]]
        type = "local"
        path = "{tmp_path / 'backups'}"
        [retry]
        attempts = 2
        delay = "1s"
    """) + extra)


def pg_job(make_job, tmp_path: Path, server, db: str, port: int | None = None, extra: str = "") -> Path:
    return db_job(make_job, tmp_path, "postgres", 'user = "postgres"\n        password_env = "VIGIL_TEST_PGPASS"',
                  db, port or server.port, extra)


def my_job(make_job, tmp_path: Path, server, db: str, port: int | None = None, extra: str = "") -> Path:
    return db_job(make_job, tmp_path, "mysql",
                  f'user = "{server.user}"\n        password_file = "{tmp_path / "mypass"}"',
                  db, port or server.port, extra)


@pytest.fixture(autouse=True)
def _secrets(monkeypatch, tmp_path):
    monkeypatch.setenv("VIGIL_TEST_PGPASS", PG_PASSWORD)
    (tmp_path / "mypass").write_text(MY_PASSWORD + "\n")
    (tmp_path / "mypass").chmod(0o600)


def new_db(prefix: str) -> str:
    return f"{prefix}_{secrets.token_hex(3)}"


# --- PostgreSQL -------------------------------------------------------------------------

PG_SCHEMA = """
CREATE TABLE customers (id serial PRIMARY KEY, name text NOT NULL, email text, avatar bytea, note text);
INSERT INTO customers (name, email, avatar, note) VALUES
  ('Zoë Ærøskøbing 名前', 'zoe@example.com', '\\x00ff10ee'::bytea, NULL),
  ('O''Brien "quoted"', NULL, NULL, E'multi\\nline\\ttab'),
  ('emoji 🎉', 'e@example.com', decode(repeat('ab', 5000), 'hex'), '');
CREATE SEQUENCE invoice_no START 1000;
SELECT nextval('invoice_no'), nextval('invoice_no');
CREATE VIEW customer_names AS SELECT name FROM customers;
CREATE TABLE audit (id serial, what text);
CREATE FUNCTION log_customer() RETURNS trigger LANGUAGE plpgsql AS
  $$ BEGIN INSERT INTO audit (what) VALUES ('insert ' || NEW.name); RETURN NEW; END $$;
CREATE TRIGGER customers_audit AFTER INSERT ON customers FOR EACH ROW EXECUTE FUNCTION log_customer();
CREATE TABLE ledger (id bigserial PRIMARY KEY, amount integer NOT NULL);
"""


def pg_fingerprint(server, db: str) -> dict[str, str]:
    tables = server.psql("SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY 1", db).split()
    out = {t: server.psql(f"SELECT md5(coalesce(string_agg(t::text, '|' ORDER BY t::text), '')) FROM {t} t", db)
           for t in tables}
    out["seq"] = server.psql("SELECT last_value FROM invoice_no", db)
    out["view"] = server.psql("SELECT count(*) FROM customer_names", db)
    out["trigger"] = server.psql("SELECT tgname FROM pg_trigger WHERE NOT tgisinternal", db)
    return out


def test_postgres_round_trip(tmp_path, make_job, postgres):
    db = new_db("shop")
    postgres.psql(f"CREATE DATABASE {db}")
    postgres.psql(PG_SCHEMA, db)
    postgres.psql("CREATE TABLE big AS SELECT g AS id, md5(g::text) AS payload FROM generate_series(1, 1000000) g",
                  db)
    job = pg_job(make_job, tmp_path, postgres, db)
    vigil("run", config=job, check=0)
    [backup] = committed(tmp_path / "backups")
    manifest = json.loads((backup / "manifest.json").read_text())
    [art] = manifest["artifacts"]
    assert art["name"] == "db-db.pgdump.zst" and art["tables"]["public.big"] == 1_000_000
    assert art["tables"]["public.customers"] == 3

    # By hand, without vigil: zstd -d | pg_restore.
    manual = new_db("manual")
    postgres.psql(f"CREATE DATABASE {manual}")
    env = {**os.environ, "PGPASSWORD": PG_PASSWORD}
    subprocess.run(f"zstd -dc < '{backup / art['name']}' | pg_restore -h 127.0.0.1 -p {postgres.port} "
                   f"-U postgres -d {manual} --exit-on-error", shell=True, check=True, env=env)

    restored = new_db("restored")
    out = vigil("restore", "app", "latest", "--source", "db", "--to-database", restored, config=job, check=0)
    assert restored in out.stdout
    want = pg_fingerprint(postgres, db)
    assert pg_fingerprint(postgres, restored) == want
    assert pg_fingerprint(postgres, manual) == want

    # An existing non-empty database is refused without --force.
    refused = vigil("restore", "app", "latest", "--source", "db", "--to-database", restored, config=job)
    assert refused.returncode != 0 and "not empty" in refused.stderr

    vigil("verify", "app", "latest", "--deep", config=job, check=0)
    ok = vigil("verify", "app", "latest", "--restore-test", config=job, check=0)
    assert "restore test" in ok.stdout
    assert "vigil_restoretest" not in postgres.psql("SELECT string_agg(datname, ' ') FROM pg_database")

    to_file = tmp_path / "plain.pgdump"
    vigil("restore", "app", "latest", "--source", "db", "--to-file", str(to_file), config=job, check=0)
    assert to_file.read_bytes()[:5] == b"PGDMP"


def test_postgres_backup_is_consistent_while_written(tmp_path, make_job, postgres):
    db = new_db("busy")
    postgres.psql(f"CREATE DATABASE {db}")
    postgres.psql("CREATE TABLE ledger (id bigserial PRIMARY KEY, amount integer NOT NULL);"
                  "CREATE TABLE filler AS SELECT g, md5(g::text) FROM generate_series(1, 300000) g", db)
    writer = postgres.background(
        "DO $$ BEGIN FOR i IN 1..200000 LOOP INSERT INTO ledger (amount) VALUES (i); "
        "INSERT INTO ledger (amount) VALUES (-i); COMMIT; END LOOP; END $$", db)
    try:
        time.sleep(0.5)
        job = pg_job(make_job, tmp_path, postgres, db)
        vigil("run", config=job, check=0)
    finally:
        writer.kill()
        writer.wait()
    restored = new_db("busy_restored")
    vigil("restore", "app", "latest", "--source", "db", "--to-database", restored, config=job, check=0)
    assert postgres.psql("SELECT coalesce(sum(amount), 0) FROM ledger", restored) == "0"
    count = int(postgres.psql("SELECT count(*) FROM ledger", restored))
    assert count > 0 and count % 2 == 0
    [run] = vigil_json("list", config=job)
    manifest = json.loads((tmp_path / "backups/app" / run["id"] / "manifest.json").read_text())
    assert manifest["artifacts"][0]["tables"]["public.ledger"] == count  # counted in the dump's snapshot


def test_postgres_server_down_is_retried_then_fails(tmp_path, make_job, postgres):
    job = pg_job(make_job, tmp_path, postgres, "postgres", port=free_port())
    proc = vigil("run", config=job, check=1)
    assert "retry 1 of 1" in proc.stderr
    [run] = vigil_json("runs", config=job)
    assert run["outcome"] == "failed" and run["step"] == "source:db"
    assert not committed(tmp_path / "backups")


def test_postgres_wrong_password_fails_at_once(tmp_path, make_job, postgres, monkeypatch):
    wrong = "wrong-Secret-123"
    monkeypatch.setenv("VIGIL_TEST_PGPASS", wrong)
    job = pg_job(make_job, tmp_path, postgres, "postgres")
    start = time.monotonic()
    proc = vigil("run", config=job, check=1)
    assert time.monotonic() - start < 10
    assert "retry" not in proc.stderr
    assert "password authentication failed" in proc.stderr
    assert wrong not in proc.stderr + proc.stdout
    for f in (tmp_path / "state").rglob("*"):
        if f.is_file():
            assert wrong.encode() not in f.read_bytes()


def test_pg_dump_older_than_the_server_is_refused_with_what_to_install():
    # The installed pg_dump is checked against the major version the server
    # reports before a dump starts; a newer server than any client is refused.
    from vigil.errors import BackupError
    from vigil.sources.db.postgres import find_tool

    assert "/bin/pg_dump" in find_tool("pg_dump", 9)
    with pytest.raises(BackupError, match=r"^pg_dump 1\d cannot dump a PostgreSQL 99 server; "
                                          r"install postgresql-client-99 or newer$"):
        find_tool("pg_dump", 99)


def _children_named(name: str, parent: int) -> list[int]:
    """Pids of `parent`'s children called `name` (not any such process on the machine:
    the other tests running beside this one have pg_dumps of their own)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                cmd = (entry / "cmdline").read_bytes().split(b"\0")
                ppid = int((entry / "stat").read_text().rpartition(")")[2].split()[1])
            except (OSError, ValueError, IndexError):
                continue
            if ppid == parent and cmd and Path(cmd[0].decode(errors="replace")).name == name:
                pids.append(int(entry.name))
    return pids


def _secrets_in_process_list(secret: str, stop: threading.Event, found: list[str]) -> None:
    while not stop.is_set():
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                try:
                    cmd = (entry / "cmdline").read_bytes().decode(errors="replace")
                except OSError:
                    continue
                if secret in cmd:
                    found.append(cmd)
        time.sleep(0.01)


def kill_dump_mid_run(job: Path, dest: Path, tools: tuple[str, ...], secret: str) -> str:
    """Start `vigil run`, SIGKILL its dump child mid-stream, check the run failed at
    its source step with nothing committed and `secret` never in the process list;
    the run's stderr."""
    stop, found = threading.Event(), []
    watcher = threading.Thread(target=_secrets_in_process_list, args=(secret, stop, found))
    watcher.start()
    proc = subprocess.Popen([VIGIL, "--config", str(job), "run"], stderr=subprocess.PIPE, text=True)
    try:
        wait_for_step(job, "source:")
        deadline = time.time() + 30
        while not (pids := [p for t in tools for p in _children_named(t, proc.pid)]) and time.time() < deadline:
            time.sleep(0.01)
        assert pids, f"{' / '.join(tools)} never started"
        os.kill(pids[0], 9)
        assert proc.wait(timeout=60) == 1
    finally:
        stop.set()
        watcher.join()
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert found == []
    assert not committed(dest)
    [run] = vigil_json("runs", config=job)
    assert run["outcome"] == "failed" and run["step"] == "source:db"
    return proc.stderr.read()


def test_postgres_killed_dump_fails_and_password_never_on_a_command_line(tmp_path, make_job, postgres):
    db = new_db("kill")
    postgres.psql(f"CREATE DATABASE {db}")
    postgres.psql("CREATE TABLE big AS SELECT g, md5(g::text) AS a, md5((g+1)::text) AS b "
                  "FROM generate_series(1, 2000000) g", db)
    job = pg_job(make_job, tmp_path, postgres, db)
    stderr = kill_dump_mid_run(job, tmp_path / "backups", ("pg_dump",), PG_PASSWORD)
    assert "pg_dump" in stderr


# --- MariaDB ----------------------------------------------------------------------------

MY_SCHEMA = """
CREATE TABLE customers (id INT AUTO_INCREMENT PRIMARY KEY, name VARCHAR(200) NOT NULL, email VARCHAR(200),
  avatar BLOB, note TEXT) CHARACTER SET utf8mb4;
INSERT INTO customers (name, email, avatar, note) VALUES
  ('Zoë Ærøskøbing 名前', 'zoe@example.com', X'00FF10EE', NULL),
  ('O''Brien "quoted"', NULL, NULL, 'multi\\nline\\ttab'),
  ('emoji 🎉', 'e@example.com', REPEAT(X'AB', 5000), '');
CREATE VIEW customer_names AS SELECT name FROM customers;
CREATE TABLE audit (id INT AUTO_INCREMENT PRIMARY KEY, what TEXT);
CREATE TRIGGER customers_audit AFTER INSERT ON customers FOR EACH ROW INSERT INTO audit (what) VALUES (NEW.name);
CREATE PROCEDURE add_customer(IN n VARCHAR(200)) INSERT INTO customers (name) VALUES (n);
CREATE TABLE ledger (id BIGINT AUTO_INCREMENT PRIMARY KEY, amount INT NOT NULL) ENGINE=InnoDB;
CREATE TABLE notes (id INT PRIMARY KEY, body TEXT) CHARACTER SET utf8mb4;
INSERT INTO notes VALUES (1, 'row),(row'), (2, 'ends);\nINSERT INTO `notes` VALUES (3,''x'');'), (3, NULL);
CREATE PROCEDURE decoy() SELECT 'a string over lines
LOCK TABLES `notes` WRITE;
INSERT INTO `notes` VALUES (4,''y''),
UNLOCK TABLES;';
"""


def my_fingerprint(server, db: str) -> dict[str, str]:
    tables = server.root_sql("SELECT table_name FROM information_schema.tables WHERE table_schema = "
                             f"'{db}' AND table_type = 'BASE TABLE' ORDER BY 1").split()
    out = {t: server.root_sql(f"CHECKSUM TABLE `{t}`", db).split()[-1] for t in tables}
    out["routines"] = server.root_sql(f"SELECT GROUP_CONCAT(routine_name) FROM information_schema.routines "
                                      f"WHERE routine_schema = '{db}'")
    out["triggers"] = server.root_sql(f"SELECT GROUP_CONCAT(trigger_name) FROM information_schema.triggers "
                                      f"WHERE trigger_schema = '{db}'")
    out["view"] = server.root_sql("SELECT COUNT(*) FROM customer_names", db)
    return out


def test_mariadb_round_trip(tmp_path, make_job, mariadb):
    db = new_db("shop")
    mariadb.root_sql(f"CREATE DATABASE {db} CHARACTER SET utf8mb4")
    mariadb.root_sql(MY_SCHEMA, db)
    mariadb.root_sql("CREATE TABLE big (id INT PRIMARY KEY, payload CHAR(32)) ENGINE=InnoDB; "
                     "INSERT INTO big SELECT seq, MD5(seq) FROM seq_1_to_1000000", db)
    job = my_job(make_job, tmp_path, mariadb, db)
    vigil("run", config=job, check=0)
    [backup] = committed(tmp_path / "backups")
    [art] = json.loads((backup / "manifest.json").read_text())["artifacts"]
    # Rows are counted in the dump as it streams: what looks like rows or table markers
    # inside strings and the procedure's text is not counted.
    assert art["name"] == "db-db.sql.zst"
    assert art["tables"] == {"audit": 0, "big": 1_000_000, "customers": 3, "ledger": 0, "notes": 3}

    # By hand, without vigil: zstd -d | mariadb.
    manual = new_db("manual")
    mariadb.root_sql(f"CREATE DATABASE {manual} CHARACTER SET utf8mb4")
    subprocess.run(f"zstd -dc < '{backup / art['name']}' | mariadb --no-defaults --socket={mariadb.socket} "
                   f"-uroot {manual}", shell=True, check=True)

    restored = new_db("restored")
    vigil("restore", "app", "latest", "--source", "db", "--to-database", restored, config=job, check=0)
    want = my_fingerprint(mariadb, db)
    assert my_fingerprint(mariadb, restored) == want
    assert my_fingerprint(mariadb, manual) == want
    vigil("verify", "app", "latest", "--deep", "--restore-test", config=job, check=0)
    assert "vigil_restoretest" not in mariadb.root_sql("SHOW DATABASES")


def test_mariadb_backup_is_consistent_while_written(tmp_path, make_job, mariadb):
    db = new_db("busy")
    mariadb.root_sql(f"CREATE DATABASE {db}")
    mariadb.root_sql("CREATE TABLE ledger (id BIGINT AUTO_INCREMENT PRIMARY KEY, amount INT NOT NULL) ENGINE=InnoDB;"
                     "CREATE TABLE filler (id INT PRIMARY KEY, p CHAR(32)) ENGINE=InnoDB;"
                     "INSERT INTO filler SELECT seq, MD5(seq) FROM seq_1_to_300000;\n"
                     "DELIMITER //\n"
                     "CREATE PROCEDURE churn() BEGIN DECLARE i INT DEFAULT 0; WHILE i < 200000 DO "
                     "START TRANSACTION; INSERT INTO ledger (amount) VALUES (i); "
                     "INSERT INTO ledger (amount) VALUES (-i); COMMIT; SET i = i + 1; END WHILE; END //", db)
    writer = mariadb.background("CALL churn()", db)
    try:
        time.sleep(0.5)
        job = my_job(make_job, tmp_path, mariadb, db)
        vigil("run", config=job, check=0)
    finally:
        writer.kill()
        writer.wait()
    restored = new_db("busy_restored")
    vigil("restore", "app", "latest", "--source", "db", "--to-database", restored, config=job, check=0)
    assert mariadb.root_sql("SELECT COALESCE(SUM(amount), 0) FROM ledger", restored) == "0"
    count = int(mariadb.root_sql("SELECT COUNT(*) FROM ledger", restored))
    assert count % 2 == 0 and count > 0
    [backup] = committed(tmp_path / "backups")
    manifest = json.loads((backup / "manifest.json").read_text())
    assert manifest["artifacts"][0]["tables"]["ledger"] == count  # read from the dump: its snapshot exactly
    vigil("verify", "app", "latest", "--restore-test", config=job, check=0)


def notes_db(mariadb, prefix: str, more: str) -> str:
    """A new database whose `notes` hold a "),(" inside a string, and the tables that `more` makes."""
    db = new_db(prefix)
    mariadb.root_sql(f"CREATE DATABASE {db} CHARACTER SET utf8mb4")
    mariadb.root_sql("CREATE TABLE notes (id INT PRIMARY KEY, body TEXT); "
                     f"INSERT INTO notes VALUES (1, 'a),(b'), (2, 'c'), (3, NULL); {more}", db)
    return db


@pytest.mark.parametrize("header", ["MariaDB", "MySQL"])
def test_mysql_one_line_inserts_are_counted_by_the_server(tmp_path, make_job, mariadb, header):
    # MySQL's mysqldump writes every INSERT on one line; there a "),(" inside a string
    # looks like a row boundary, so those tables are counted on the server instead:
    # beside the dump when its first line says MySQL, after it when the layout shows late.
    db = notes_db(mariadb, "oneline", "CREATE TABLE plain (id INT PRIMARY KEY); INSERT INTO plain VALUES (1), (2)")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    tool = bin_dir / "mariadb-dump"  # found before the real one: MySQL's layout, rows joined on one line
    tool.write_text(f"#!/bin/bash\nset -o pipefail\n{shutil.which('mariadb-dump')} \"$@\" "
                    f"| sed -z 's/\\n-- MariaDB dump/\\n-- {header} dump/; s/VALUES\\n(/VALUES (/g; s/),\\n(/),(/g'\n")
    tool.chmod(0o755)
    job = my_job(make_job, tmp_path, mariadb, db)
    proc = vigil("-v", "run", config=job, check=0, env={"PATH": f"{bin_dir}:{os.environ['PATH']}"})
    assert ("the server counts rows beside the dump" in proc.stderr) == (header == "MySQL")
    [backup] = committed(tmp_path / "backups")
    sql = zstandard.decompress((backup / "db-db.sql.zst").read_bytes(), max_output_size=1 << 30)
    assert f"\n-- {header} dump".encode() in sql[:512] and b"VALUES (1,'a),(b'),(2,'c'),(3,NULL);" in sql
    [art] = json.loads((backup / "manifest.json").read_text())["artifacts"]
    assert art["tables"] == {"notes": 3, "plain": 2}
    vigil("verify", "app", "latest", "--restore-test", config=job, check=0)


@pytest.mark.parametrize("option", ["complete-insert", "skip-add-locks", "insert-ignore"])
def test_mysql_dump_options_from_my_cnf_leave_counts_to_the_server(tmp_path, make_job, mariadb, option):
    # The dump tool also reads the user's ~/.my.cnf: a [mysqldump] option there changes the
    # statements (column lists, no LOCK lines, INSERT IGNORE) so rows are not where vigil
    # reads them; those tables are counted on the server, and the counts stay exact.
    db = notes_db(mariadb, "mycnf", "CREATE TABLE single (id INT PRIMARY KEY); INSERT INTO single VALUES (7)")
    home = tmp_path / "home"
    home.mkdir()
    (home / ".my.cnf").write_text(f"[mysqldump]\n{option}\n")
    job = my_job(make_job, tmp_path, mariadb, db)
    proc = vigil("-v", "run", config=job, check=0, env={"HOME": str(home)})
    assert "rows of notes, single counted by the server" in proc.stderr
    [backup] = committed(tmp_path / "backups")
    [art] = json.loads((backup / "manifest.json").read_text())["artifacts"]
    assert art["tables"] == {"notes": 3, "single": 1}
    vigil("verify", "app", "latest", "--restore-test", config=job, check=0, env={"HOME": str(home)})


def test_mariadb_server_down_and_wrong_password(tmp_path, make_job, mariadb):
    down = my_job(make_job, tmp_path, mariadb, "mysql", port=free_port())
    proc = vigil("run", config=down, check=1)
    assert "retry 1 of 1" in proc.stderr
    [run] = vigil_json("runs", config=down)
    assert run["step"] == "source:db" and not committed(tmp_path / "backups")

    (tmp_path / "mypass").write_text("wrong-Secret-456\n")
    job = my_job(make_job, tmp_path, mariadb, "mysql")
    proc = vigil("run", config=job, check=1)
    assert "retry" not in proc.stderr and "Access denied" in proc.stderr
    assert "wrong-Secret-456" not in proc.stderr


def test_mariadb_killed_dump_fails_and_password_never_on_a_command_line(tmp_path, make_job, mariadb):
    db = new_db("mykill")
    mariadb.root_sql(f"CREATE DATABASE {db}")
    mariadb.root_sql("CREATE TABLE big (id INT PRIMARY KEY, a CHAR(32), b CHAR(32)) "
                     "SELECT seq AS id, MD5(seq) AS a, MD5(seq + 1) AS b FROM seq_1_to_2000000", db)
    job = my_job(make_job, tmp_path, mariadb, db)
    stderr = kill_dump_mid_run(job, tmp_path / "backups", ("mariadb-dump", "mysqldump"), MY_PASSWORD)
    assert "dump" in stderr


def test_restore_test_names_the_table_when_rows_were_dropped(tmp_path, make_job, mariadb):
    db = new_db("edit")
    mariadb.root_sql(f"CREATE DATABASE {db}")
    mariadb.root_sql("CREATE TABLE orders (id INT PRIMARY KEY, total INT); "
                     "INSERT INTO orders SELECT seq, seq * 10 FROM seq_1_to_100; "
                     "CREATE TABLE users (id INT PRIMARY KEY); INSERT INTO users VALUES (1), (2)", db)
    job = my_job(make_job, tmp_path, mariadb, db)
    vigil("run", config=job, check=0)
    vigil("verify", "app", "latest", "--restore-test", config=job, check=0)

    # Someone edits the dump to drop rows, and fixes up the manifest so plain verify passes.
    [backup] = committed(tmp_path / "backups")
    path = backup / "db-db.sql.zst"
    sql = zstandard.decompress(path.read_bytes(), max_output_size=1 << 30)
    edited = sql.replace(b"(1,10),", b"").replace(b"(2,20),", b"")
    assert edited != sql
    data = zstandard.compress(edited)
    path.write_bytes(data)
    manifest = json.loads((backup / "manifest.json").read_text())
    import hashlib

    manifest["artifacts"][0].update(size=len(data), sha256=hashlib.sha256(data).hexdigest())
    (backup / "manifest.json").write_text(json.dumps(manifest))
    vigil("verify", "app", "latest", config=job, check=0)
    proc = vigil("verify", "app", "latest", "--restore-test", config=job, check=1)
    assert "table orders: 98 rows restored, 100 at backup time" in proc.stdout
    assert "users" not in proc.stdout.split("DAMAGED")[1]


def test_postgres_through_s3_encrypted(tmp_path, make_job, postgres, s3_server, s3_bucket):
    s3, bucket = s3_bucket
    db = new_db("offsite")
    postgres.psql(f"CREATE DATABASE {db}")
    postgres.psql(PG_SCHEMA, db)
    key = tmp_path / "key.txt"
    recipient = age_keygen(key)
    job = make_job(textwrap.dedent(f"""
        [[source]]
        type = "postgres"
        name = "db"
        host = "127.0.0.1"
        port = {postgres.port}
        user = "postgres"
        password_env = "VIGIL_TEST_PGPASS"
        database = "{db}"
        [[destination]]
        type = "s3"
        bucket = "{bucket}"
        endpoint_url = "{s3_server}"
        region = "us-east-1"
        access_key_id_env = "VIGIL_TEST_S3_KEY"
        secret_access_key_env = "VIGIL_TEST_S3_SECRET"
        [encryption]
        recipients = ["{recipient}"]
        identity_file = "{key}"
    """))
    vigil("run", config=job, check=0)
    [row] = vigil_json("list", config=job)
    assert row["artifacts"] == ["db-db.pgdump.zst.age"]
    vigil("verify", "app", "latest", "--deep", "--restore-test", config=job, check=0)
    restored = new_db("offsite_restored")
    vigil("restore", "app", "latest", "--source", "db", "--to-database", restored, config=job, check=0)
    assert pg_fingerprint(postgres, restored) == pg_fingerprint(postgres, db)


def with_env_file(job: Path, env_file: Path) -> Path:
    """The job with `env_file` as its first top-level key."""
    job.write_text(f'env_file = "{env_file}"\n' + job.read_text())
    return job


def test_mariadb_password_from_env_file_in_a_cron_like_environment(tmp_path, make_job, mariadb):
    db = new_db("cron")
    mariadb.root_sql(f"CREATE DATABASE {db}; CREATE TABLE {db}.t (id INT PRIMARY KEY); INSERT INTO {db}.t VALUES (1)")
    env_file = tmp_path / "app.env"
    # Single quotes keep the password's double quotes and '#' literal, as in a Laravel .env.
    env_file.write_text(f"# the app's settings\nDB_USER={mariadb.user}\nDB_PASSWORD='{MY_PASSWORD}'\n")
    env_file.chmod(0o600)
    job = with_env_file(db_job(make_job, tmp_path, "mysql", f'user = "{mariadb.user}"\n        '
                               'password_env = "DB_PASSWORD"', db, mariadb.port), env_file)
    cron = {"PATH": os.environ["PATH"], "HOME": os.environ.get("HOME", "/root")}
    proc = subprocess.run([VIGIL, "--config", str(job), "run"], env=cron, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    [backup] = committed(tmp_path / "backups")
    [art] = json.loads((backup / "manifest.json").read_text())["artifacts"]
    assert art["tables"] == {"t": 1}


def test_doctor_connects_to_mariadb_with_the_jobs_credentials(tmp_path, make_job, mariadb):
    env_file = tmp_path / "app.env"
    env_file.write_text(f"DB_PASSWORD='{MY_PASSWORD}'\n")
    env_file.chmod(0o640)
    job = with_env_file(db_job(make_job, tmp_path, "mysql", f'user = "{mariadb.user}"\n        '
                               'password_env = "DB_PASSWORD"', "mysql", mariadb.port), env_file)
    out = vigil("doctor", "--root", str(tmp_path / "empty-root"), config=job).stdout
    assert "database: source db: connects as backup (server " in out, out
    assert "PROBLEM  database" not in out
    assert f"WARNING  secrets: env_file {env_file} is readable by group or others (mode 0640)" in out
    assert MY_PASSWORD not in out

    env_file.write_text("DB_PASSWORD=wrong-Secret-456\n")
    proc = vigil("doctor", "--root", str(tmp_path / "empty-root"), config=job)
    assert proc.returncode == 1
    assert "PROBLEM  database: source db: cannot connect:" in proc.stdout and "Access denied" in proc.stdout
    assert "wrong-Secret-456" not in proc.stdout


def test_pgpass_of_a_killed_run_is_removed_by_the_next_run(tmp_path, make_job, postgres):
    db = new_db("leftover")
    postgres.psql(f"CREATE DATABASE {db}")
    postgres.psql("CREATE TABLE t AS SELECT 1 AS x", db)
    job = pg_job(make_job, tmp_path, postgres, db)
    tmp = tmp_path / "state/tmp"
    # The dump waits for this lock, with its password file in place, until vigil is killed.
    locker = postgres.background("BEGIN; LOCK TABLE t IN ACCESS EXCLUSIVE MODE; SELECT pg_sleep(60);", db)
    run = subprocess.Popen([VIGIL, "--config", str(job), "run"], stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        wait_for_step(job, "source:db")
        deadline = time.time() + 30
        while not (left := list(tmp.rglob("pgpass-*"))) and time.time() < deadline:
            time.sleep(0.02)
        assert left, "no password file appeared"
        os.killpg(run.pid, 9)  # vigil and its children: no clean-up runs
        run.wait(timeout=30)
    finally:
        if run.poll() is None:
            os.killpg(run.pid, 9)
            run.wait()
        # The server ends the locking transaction only when told: its client going away is
        # noticed after pg_sleep.
        postgres.psql(f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{db}'")
        locker.wait(timeout=30)
    assert all(p.exists() for p in left)
    proc = vigil("run", config=job, check=0)
    assert not any(p.exists() for p in left) and not list(tmp.rglob("pgpass-*"))
    assert "earlier run" in proc.stderr


def test_doctor_connects_to_postgres_with_the_jobs_credentials(tmp_path, make_job, postgres):
    job = pg_job(make_job, tmp_path, postgres, "postgres")
    out = vigil("doctor", "--root", str(tmp_path / "empty-root"), config=job).stdout
    assert "can dump PostgreSQL" in out and "PROBLEM  database" not in out, out
    proc = vigil("doctor", "--root", str(tmp_path / "empty-root"), config=job,
                 env={"VIGIL_TEST_PGPASS": "wrong-Secret-789"})
    assert proc.returncode == 1
    assert "PROBLEM  database: source db: cannot connect:" in proc.stdout, proc.stdout
    assert "wrong-Secret-789" not in proc.stdout
