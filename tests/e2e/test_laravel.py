"""From a Laravel app to a scheduled, monitored backup: `vigil init --laravel`, end to end.

The founding incident: a Laravel API whose `.env` holds every setting, an old
`scripts/backup-run.sh` scheduled three times, MariaDB, and failure mail that
never came. Real MariaDB, PostgreSQL and SMTP servers; the installed `vigil`.
"""

from __future__ import annotations

import os
import re
import secrets
import subprocess
import textwrap
import tomllib
from pathlib import Path

from dbservers import MY_PASSWORD, PG_PASSWORD
from helpers import committed, vigil
from jobfile import files_source, local_destination, sqlite_source, toml
from servers import SMTP_PASSWORD, SMTP_USER

APP_KEY = "base64:VGhpcyBpcyBub3QgYSByZWFsIGtleSwganVzdCBhIHRlc3Q="
OTHER_SECRETS = {"REDIS_PASSWORD": "redis-secret-5d41402a", "AWS_SECRET_ACCESS_KEY": "aws/secret+key=7c4a8d09"}


def laravel_app(root: Path, env: str) -> Path:
    """A Laravel-shaped app: artisan, .env, code, what Laravel regenerates, logs."""
    for d in ("app/Models", "public", "vendor/laravel/framework", "node_modules/vite", "storage/framework/cache/data",
              "storage/framework/sessions", "storage/framework/views", "storage/logs", "bootstrap/cache",
              "storage/app/public", "scripts", "database"):
        (root / d).mkdir(parents=True, exist_ok=True)
    (root / "artisan").write_text("#!/usr/bin/env php\n<?php\n")
    (root / "app/Models/User.php").write_text("<?php\nclass User {}\n")
    (root / "public/index.php").write_text("<?php\n")
    (root / "vendor/laravel/framework/big.php").write_text("<?php\n" * 1000)
    (root / "node_modules/vite/index.js").write_text("export {}\n")
    (root / "storage/framework/cache/data/x").write_text("cached")
    (root / "storage/framework/sessions/s1").write_text("session")
    (root / "storage/framework/views/v1.php").write_text("compiled")
    (root / "bootstrap/cache/config.php").write_text("<?php return [];\n")
    (root / "storage/logs/laravel.log").write_text("[2025-11-04 19:00:01] local.INFO: hello\n")
    (root / "storage/app/public/avatar.png").write_bytes(os.urandom(2048))
    (root / ".env").write_text(textwrap.dedent(env).lstrip()
                               + f'APP_KEY={APP_KEY}\n'
                               + "".join(f'{k}="{v}"\n' for k, v in OTHER_SECRETS.items()))
    (root / ".env").chmod(0o640)
    return root


def mysql_env(mariadb, db: str, user: str, password: str, mail: str = "MAIL_MAILER=log\n") -> str:
    return (f'APP_NAME="Api Gateway"\nAPP_ENV=production\n# the database\nDB_CONNECTION=mysql\n'
            f"DB_HOST=127.0.0.1\nDB_PORT={mariadb.port}\nDB_DATABASE={db}\nDB_USERNAME={user}\n"
            f"DB_PASSWORD='{password}'\n" + mail)


def smtp_env(smtp) -> str:
    return (f"MAIL_MAILER=smtp\nMAIL_HOST=127.0.0.1\nMAIL_PORT={smtp.port}\nMAIL_USERNAME={SMTP_USER}\n"
            f'MAIL_PASSWORD="{SMTP_PASSWORD}"\nMAIL_ENCRYPTION=tls\nAPP_HOST=api-gateway.example\n'
            'MAIL_FROM_ADDRESS="backup@${APP_HOST}"\nMAIL_FROM_NAME="${APP_NAME}"\n')


def app_user(mariadb, db: str, grants: str = "SELECT, SHOW VIEW, TRIGGER, EVENT") -> tuple[str, str]:
    """An application account with the dump's rights on `db` only: it may not create databases."""
    user, password = f"app_{secrets.token_hex(3)}", "app pw #1 \"q\" ${NOT_A_VAR}"
    mariadb.root_sql(f"CREATE USER '{user}'@'%' IDENTIFIED BY '{password.replace(chr(34), chr(92) + chr(34))}'; "
                     f"GRANT {grants} ON `{db}`.* TO '{user}'@'%'; GRANT SELECT ON mysql.proc TO '{user}'@'%'")
    return user, password


def create_app_database(mariadb, rows: int = 50) -> str:
    db = f"gw_{secrets.token_hex(3)}"
    mariadb.root_sql(f"CREATE DATABASE {db} CHARACTER SET utf8mb4")
    mariadb.root_sql("CREATE TABLE users (id INT PRIMARY KEY, name VARCHAR(50)); "
                     "CREATE TABLE jobs (id INT PRIMARY KEY AUTO_INCREMENT, payload TEXT); "
                     "CREATE VIEW active_users AS SELECT * FROM users; "
                     "INSERT INTO users SELECT seq, CONCAT('user', seq) FROM seq_1_to_" + str(rows), db)
    return db


def incident_schedules(root: Path, script: Path) -> Path:
    """backup-run.sh at 19:00, three times: /etc/crontab, /etc/cron.d, a systemd timer."""
    (root / "etc/cron.d").mkdir(parents=True)
    (root / "etc/systemd/system/timers.target.wants").mkdir(parents=True)
    (root / "etc/crontab").write_text(f"SHELL=/bin/sh\n0 19 * * * root {script} >> /var/log/backup.log 2>&1\n")
    (root / "etc/cron.d/api-backup").write_text(f"0 19 * * * root {script}\n")
    (root / "etc/cron.d/api-backup").chmod(0o644)
    (root / "etc/systemd/system/api-backup.timer").write_text(
        "[Unit]\nDescription=backup\n[Timer]\nOnCalendar=*-*-* 19:00:00\n[Install]\nWantedBy=timers.target\n")
    (root / "etc/systemd/system/api-backup.service").write_text(f"[Service]\nType=oneshot\nExecStart={script}\n")
    os.symlink("../api-backup.timer", root / "etc/systemd/system/timers.target.wants/api-backup.timer")
    return root


def init(app: Path, tmp_path: Path, *args: str, root: Path | None = None, check: int | None = None,
         env: dict | None = None):
    return vigil("init", "--laravel", str(app), "--state-dir", str(tmp_path / "state"), "--backup-dir",
                 str(tmp_path / "backups"), "--root", str(root or tmp_path / "empty-root"), *args, check=check,
                 env=env)


def assert_no_secret(text: str, *secret_values: str) -> None:
    for value in (APP_KEY, *OTHER_SECRETS.values(), *secret_values):
        assert value not in text, value


def test_the_incident_end_to_end(tmp_path, mariadb, smtp_server):
    db = create_app_database(mariadb)
    user, password = app_user(mariadb, db)
    app = laravel_app(tmp_path / "var/www/api-gateway", mysql_env(mariadb, db, user, password, smtp_env(smtp_server)))
    script = app / "scripts/backup-run.sh"
    script.write_text("#!/bin/bash\nmysqldump ... && tar czf ...\n")
    root = incident_schedules(tmp_path / "root", script)
    job = tmp_path / "jobs/api-gateway.toml"

    proc = init(app, tmp_path, "--notify-email", "ops@example.test", "--output", str(job), root=root)
    # Doctor's verdict: the old script runs three times. That is the one problem left.
    assert proc.returncode == 1, proc.stdout + proc.stderr
    out = proc.stdout
    assert f"wrote {job}" in out
    assert f"old backup script(s) named for doctor: {script}" in out
    assert "scheduled 3 times (cron and systemd timer both)" in out
    assert "the old backup script runs from 3 schedule(s)" in out and "remove them all, then" in out
    for where in ("/etc/crontab:2", "/etc/cron.d/api-backup:1", "/etc/systemd/system/api-backup.timer"):
        assert where in out, where
    assert f"'{user}'@'%' has every privilege the dump needs" in out
    assert "drift: source db matches the database" in out
    problems = [line for line in out.splitlines() if line.startswith("  PROBLEM")]
    assert {p.split(":")[0].split()[-1] for p in problems} == {"schedule"}, problems  # 3x, and the same minute
    assert f"vigil --config {job} run api-gateway" in out and f"vigil --config {job} schedule install api-gateway" in out
    text = job.read_text()
    assert_no_secret(text, password, SMTP_PASSWORD)
    assert 'password_env = "DB_PASSWORD"' in text and 'password_env = "MAIL_PASSWORD"' in text
    assert tomllib.loads(text)["env_file"] == str(app / ".env")

    # The job backs up, as it is, with the app's account and the app's .env.
    run = vigil("run", "api-gateway", config=job)
    assert run.returncode == 0, run.stderr
    [backup] = committed(tmp_path / "backups", "api-gateway")
    names = subprocess.run(f"zstd -dc < '{backup}/files-app.tar.zst' | tar t", shell=True, capture_output=True,
                           text=True, check=True).stdout.split()
    assert "app/Models/User.php" in names and "storage/logs/laravel.log" in names and ".env" in names
    for regenerated in ("vendor/", "node_modules/", "storage/framework/cache/", "storage/framework/sessions/",
                        "storage/framework/views/", "bootstrap/cache/"):
        assert not any(n.startswith(regenerated) for n in names), regenerated

    # Restore into a new database: the app's account may not create one, and is told so as a permission error.
    denied = vigil("restore", "api-gateway", "latest", "--source", "db", "--to-database", f"{db}_restored",
                   config=job)
    assert denied.returncode == 1
    assert "permission denied" in denied.stderr and "not a fault of the backup" in denied.stderr
    assert "--db-user" in denied.stderr and "damaged" not in denied.stderr.lower()
    vigil("restore", "api-gateway", "latest", "--source", "db", "--to-database", f"{db}_restored",
          "--db-user", mariadb.user, "--db-password-env", "VIGIL_TEST_ADMIN_PW", config=job,
          env={"VIGIL_TEST_ADMIN_PW": MY_PASSWORD}, check=0)
    assert mariadb.root_sql("SELECT COUNT(*), MAX(name) FROM users", f"{db}_restored") == "50\tuser9"
    assert "active_users" in mariadb.root_sql("SHOW FULL TABLES WHERE Table_type = 'VIEW'", f"{db}_restored")

    # And a failure mails, through the app's own MAIL_* settings.
    env_file = app / ".env"
    env_file.write_text(env_file.read_text().replace(f"DB_PASSWORD='{password}'", "DB_PASSWORD='wrong'"))
    tls = {"SSL_CERT_FILE": str(smtp_server.ca_file)}  # the test server's CA, as a real host trusts its relay's
    vigil("run", "api-gateway", config=job, env=tls, check=1)
    [mail] = smtp_server.wait_for(1)
    assert mail["Subject"].startswith("[vigil] FAILED api-gateway@"), mail["Subject"]
    assert "Step:      source:db" in mail.get_content()
    assert mail["From"] == "backup@api-gateway.example" and mail["To"] == "ops@example.test"
    assert SMTP_PASSWORD not in mail.as_string() and password not in mail.as_string()


def test_restore_test_with_the_apps_account_is_a_permission_error_not_damage(tmp_path, mariadb):
    db = create_app_database(mariadb, rows=5)
    user, password = app_user(mariadb, db)
    app = laravel_app(tmp_path / "app", mysql_env(mariadb, db, user, password))
    job = tmp_path / "job.toml"
    init(app, tmp_path, "--output", str(job))
    vigil("run", config=job, check=0)
    proc = vigil("verify", "--restore-test", config=job)
    assert proc.returncode == 1
    assert "FAILED" in proc.stdout and "permission denied" in proc.stdout and "DAMAGED" not in proc.stdout
    assert "damaged" not in vigil("health", config=job).stdout.lower()
    # The same with an admin account, given in the job's [restore] table: the test runs and passes.
    with open(job, "a") as fh:
        fh.write(f'\n[restore]\nuser = "{mariadb.user}"\npassword_env = "VIGIL_TEST_ADMIN_PW"\n')
    ok = vigil("verify", "--restore-test", config=job, env={"VIGIL_TEST_ADMIN_PW": MY_PASSWORD})
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "(restore test)" in ok.stdout


def test_doctor_names_a_missing_mysql_privilege_and_its_grant(tmp_path, mariadb):
    db = create_app_database(mariadb, rows=3)
    user, password = app_user(mariadb, db, grants="SELECT, SHOW VIEW, TRIGGER")
    app = laravel_app(tmp_path / "app", mysql_env(mariadb, db, user, password))
    job = tmp_path / "job.toml"
    proc = init(app, tmp_path, "--output", str(job))
    assert proc.returncode == 1
    assert f"PROBLEM  privileges: source db: '{user}'@'%' lacks EVENT on {db}" in proc.stdout
    assert f"fix: GRANT EVENT ON `{db}`.* TO '{user}'@'%';" in proc.stdout
    assert "lacks SELECT on" not in proc.stdout and "lacks TRIGGER" not in proc.stdout
    # The dump would indeed fail without it; with the GRANT doctor gives, it does not.
    assert vigil("run", config=job).returncode == 1
    mariadb.root_sql(f"GRANT EVENT ON `{db}`.* TO '{user}'@'%'")
    assert "privileges" in vigil("doctor", "--root", str(tmp_path / "empty-root"), config=job).stdout
    assert "lacks" not in vigil("doctor", "--root", str(tmp_path / "empty-root"), config=job).stdout
    vigil("run", config=job, check=0)


def test_doctor_reports_drift_from_the_apps_env(tmp_path, mariadb):
    db = create_app_database(mariadb, rows=1)
    user, password = app_user(mariadb, db)
    app = laravel_app(tmp_path / "app", mysql_env(mariadb, db, user, password))
    job = tmp_path / "job.toml"
    init(app, tmp_path, "--output", str(job))
    env = (app / ".env").read_text()
    (app / ".env").write_text(env.replace(f"DB_DATABASE={db}", "DB_DATABASE=gateway_v2")
                              .replace(f"DB_USERNAME={user}", "DB_USERNAME=gateway")
                              .replace("DB_HOST=127.0.0.1", "DB_HOST=db2.internal"))
    out = vigil("doctor", "--root", str(tmp_path / "empty-root"), config=job).stdout
    drift = [line for line in out.splitlines() if "drift:" in line]
    assert len(drift) == 3, out
    assert "DB_HOST is db2.internal in the app's .env, source db has host = 127.0.0.1" in out
    assert f"DB_DATABASE is gateway_v2 in the app's .env, source db has database = {db}" in out
    assert f"DB_USERNAME is gateway in the app's .env, source db has user = {user}" in out


def test_pgsql_app(tmp_path, postgres):
    db = f"shop_{secrets.token_hex(3)}"
    role, password = f"shop_{secrets.token_hex(3)}", "pg app pw 'x' #y"
    postgres.psql(f"CREATE ROLE {role} LOGIN PASSWORD '{password.replace(chr(39), chr(39) * 2)}'")
    postgres.psql(f"CREATE DATABASE {db}")
    postgres.psql("CREATE TABLE orders (id serial PRIMARY KEY, total int); INSERT INTO orders (total) "
                  "SELECT g FROM generate_series(1, 20) g; CREATE TABLE audit (id int)", db)
    postgres.psql(f"GRANT SELECT ON orders TO {role}", db)
    env = (f"APP_NAME=Shop\nDB_CONNECTION=pgsql\nDB_HOST=127.0.0.1\nDB_PORT={postgres.port}\nDB_DATABASE={db}\n"
           f"DB_USERNAME={role}\nDB_PASSWORD=\"{password}\"\nMAIL_MAILER=log\n")
    app = laravel_app(tmp_path / "shop", env)
    job = tmp_path / "shop.toml"
    proc = init(app, tmp_path, "--output", str(job))
    assert proc.returncode == 1
    assert f"role {role} lacks SELECT on table public.audit in database {db}" in proc.stdout
    assert f"role {role} lacks SELECT on sequence public.orders_id_seq" in proc.stdout
    assert f"GRANT SELECT ON ALL TABLES IN SCHEMA \"public\" TO \"{role}\";" in proc.stdout
    assert "lacks SELECT on table public.orders" not in proc.stdout
    assert_no_secret(job.read_text(), password)
    postgres.psql(f"GRANT SELECT ON ALL TABLES IN SCHEMA public TO {role}; "
                  f"GRANT SELECT ON ALL SEQUENCES IN SCHEMA public TO {role}", db)
    doctor = vigil("doctor", "--root", str(tmp_path / "empty-root"), config=job).stdout
    assert f"role {role} can read every schema, table, sequence and large object" in doctor
    vigil("run", config=job, check=0)
    vigil("restore", "shop", "latest", "--source", "db", "--to-database", f"{db}_r", "--db-user", "postgres",
          "--db-password-env", "VIGIL_TEST_ADMIN_PW", config=job, env={"VIGIL_TEST_ADMIN_PW": PG_PASSWORD}, check=0)
    assert postgres.psql("SELECT count(*) FROM orders", f"{db}_r") == "20"


def test_sqlite_app_is_its_own_source_and_not_archived_twice(tmp_path):
    import sqlite3

    app = laravel_app(tmp_path / "blog", "APP_NAME=Blog\nDB_CONNECTION=sqlite\nMAIL_MAILER=log\n")
    live = sqlite3.connect(app / "database/database.sqlite")
    live.execute("PRAGMA journal_mode=WAL")
    live.execute("CREATE TABLE posts (id INTEGER PRIMARY KEY, title TEXT)")
    live.executemany("INSERT INTO posts (title) VALUES (?)", [(f"post {i}",) for i in range(30)])
    live.commit()  # the connection stays open: -wal and -shm exist, as on a live server
    job = tmp_path / "blog.toml"
    out = init(app, tmp_path, "--output", str(job), "--notify-email", "ops@example.test").stdout
    assert "MAIL_MAILER is log, not smtp" in out and "no email channel was written" in out
    assert "[[notify]]" not in job.read_text()
    proc = vigil("run", config=job)
    assert proc.returncode == 0, proc.stderr
    [backup] = committed(tmp_path / "backups", "blog")
    names = subprocess.run(f"zstd -dc < '{backup}/files-app.tar.zst' | tar t", shell=True, capture_output=True,
                           text=True, check=True).stdout.split()
    assert not any(n.startswith("database/database.sqlite") for n in names), names
    assert (backup / "db-db.sqlite.zst").exists()
    live.close()


def test_files_source_leaves_out_the_jobs_sqlite_database_and_says_so_once(tmp_path, make_job):
    import sqlite3

    tree = tmp_path / "site"
    (tree / "data").mkdir(parents=True)
    (tree / "data/notes.txt").write_text("kept")
    (tree / "data/app.db-journal.txt").write_text("kept too: not a companion")
    live = sqlite3.connect(tree / "data/app.db")
    live.execute("PRAGMA journal_mode=WAL")
    live.execute("CREATE TABLE t (x)")
    live.execute("INSERT INTO t VALUES (1)")
    live.commit()
    job = make_job("\n" + toml({"source": [files_source(tree), sqlite_source(tree / "data/app.db")],
                                "destination": [local_destination(tmp_path / "backups")]}))
    proc = vigil("run", config=job, check=0)
    [backup] = committed(tmp_path / "backups")
    names = subprocess.run(f"zstd -dc < '{backup}/files-app.tar.zst' | tar t", shell=True, capture_output=True,
                           text=True, check=True).stdout.split()
    assert "data/notes.txt" in names and "data/app.db-journal.txt" in names
    assert not [n for n in names if re.fullmatch(r"data/app\.db(-wal|-shm|-journal)?", n)], names
    assert proc.stderr.count("leaving out data/app.db") == 1, proc.stderr
    live.close()


def test_refuses_a_directory_that_is_not_a_laravel_app(tmp_path):
    (tmp_path / "site").mkdir()
    (tmp_path / "site/.env").write_text("DB_CONNECTION=mysql\n")
    proc = init(tmp_path / "site", tmp_path, "--output", str(tmp_path / "job.toml"))
    assert proc.returncode == 2
    assert proc.stderr.strip() == f"vigil: error: --laravel: {tmp_path / 'site'} is not a Laravel app (no artisan file)"
    assert not (tmp_path / "job.toml").exists()


def test_refuses_to_overwrite_a_job_file(tmp_path):
    app = laravel_app(tmp_path / "app", "APP_NAME=Blog\nDB_CONNECTION=sqlite\n")
    job = tmp_path / "job.toml"
    job.write_text("# a job someone wrote by hand\n")
    proc = init(app, tmp_path, "--output", str(job))
    assert proc.returncode == 2 and "already exists; refusing to overwrite it" in proc.stderr
    assert job.read_text() == "# a job someone wrote by hand\n"
    assert "Traceback" not in proc.stderr


def test_routine_privilege_is_asked_for_only_when_routines_would_be_lost(tmp_path, mariadb):
    """A Laravel account (ALL on its database) sees its routines: none, nothing to grant; one, and
    doctor asks for what lets the dump read it (mariadb-dump would leave it out without an error)."""
    db = create_app_database(mariadb, rows=1)
    user, password = f"app_{secrets.token_hex(3)}", "pw-all"
    mariadb.root_sql(f"CREATE USER '{user}'@'%' IDENTIFIED BY '{password}'; GRANT ALL ON `{db}`.* TO '{user}'@'%'")
    app = laravel_app(tmp_path / "app", mysql_env(mariadb, db, user, password))
    job = tmp_path / "job.toml"
    out = init(app, tmp_path, "--output", str(job)).stdout
    assert f"'{user}'@'%' has every privilege the dump needs" in out
    mariadb.root_sql("CREATE PROCEDURE purge_sessions() DELETE FROM jobs", db)
    out = vigil("doctor", "--root", str(tmp_path / "empty-root"), config=job).stdout
    assert f"lacks SELECT on mysql.proc, which --routines needs to read the stored procedures and functions of {db}" \
        in out
    assert f"fix: GRANT SELECT ON mysql.proc TO '{user}'@'%';" in out
    run = vigil("run", config=job)  # what doctor warned of
    assert run.returncode == 1 and "insufficient privileges to SHOW CREATE PROCEDURE" in run.stderr
    mariadb.root_sql(f"GRANT SELECT ON mysql.proc TO '{user}'@'%'")
    vigil("run", config=job, check=0)


def test_writes_into_the_config_directory_and_never_twice(tmp_path):
    app = laravel_app(tmp_path / "app", "APP_NAME=Blog\nDB_CONNECTION=sqlite\n")
    jobs = tmp_path / "jobs"
    jobs.mkdir()
    missing = vigil("--config", str(jobs), "init", "--laravel", str(app), "--output", str(tmp_path / "other.toml"),
                    "--root", str(tmp_path / "empty-root"))
    assert f"WARNING  database: source db: database {app / 'database/database.sqlite'} does not exist" in missing.stdout
    import sqlite3

    sqlite3.connect(app / "database/database.sqlite").execute("CREATE TABLE t (x)").connection.close()
    first = vigil("--config", str(jobs), "init", "--laravel", str(app), "--state-dir", str(tmp_path / "state"),
                  "--backup-dir", str(tmp_path / "backups"), "--root", str(tmp_path / "empty-root"))
    assert f"wrote {jobs / 'blog.toml'}" in first.stdout
    assert f"vigil --config {jobs} run blog" in first.stdout
    written = (jobs / "blog.toml").read_text()
    second = vigil("--config", str(jobs), "init", "--laravel", str(app))
    assert second.returncode == 2 and f"{jobs / 'blog.toml'} already exists" in second.stderr
    assert (jobs / "blog.toml").read_text() == written
    vigil("run", "blog", config=jobs, check=0)


def test_a_job_the_loader_would_refuse_is_never_written_into_the_jobs_directory(tmp_path):
    app = laravel_app(tmp_path / "app", "APP_NAME=Billing\nDB_CONNECTION=mysql\nDB_PORT=0\nDB_DATABASE=billing\n")
    jobs = tmp_path / "jobs"
    jobs.mkdir()
    (jobs / "other.toml").write_text(f'[[source]]\ntype = "files"\npath = "{app}"\n'
                                     f'[[destination]]\ntype = "local"\npath = "{tmp_path / "b"}"\n')
    proc = vigil("--config", str(jobs), "init", "--laravel", str(app), "--root", str(tmp_path / "empty-root"))
    assert proc.returncode == 2 and "DB_PORT: '0' is not a port number" in proc.stderr
    (app / ".env").write_text("APP_NAME=Billing\nDB_CONNECTION=sqlite\nMAIL_MAILER=smtp\nMAIL_HOST=mx\n"
                              "MAIL_FROM_ADDRESS='not an address'\n")
    proc = vigil("--config", str(jobs), "init", "--laravel", str(app), "--notify-email", "ops@example.com",
                 "--root", str(tmp_path / "empty-root"))
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert f"{jobs / 'billing.toml'} not written" in proc.stderr and "from" in proc.stderr
    assert sorted(p.name for p in jobs.iterdir()) == ["other.toml"]  # no half-made job, no temporary file
    vigil("list", "other", config=jobs, check=0)  # the other jobs are untouched


def test_a_symlinked_sqlite_database_is_left_out_under_both_names(tmp_path, make_job):
    import sqlite3

    tree = tmp_path / "site"
    (tree / "storage").mkdir(parents=True)
    (tree / "database").mkdir()
    sqlite3.connect(tree / "storage/real.sqlite").execute("CREATE TABLE t (x)").connection.close()
    (tree / "database/database.sqlite").symlink_to("../storage/real.sqlite")
    job = make_job("\n" + toml({"source": [files_source(tree), sqlite_source(tree / "database/database.sqlite")],
                                "destination": [local_destination(tmp_path / "backups")]}))
    vigil("run", config=job, check=0)
    [backup] = committed(tmp_path / "backups")
    names = subprocess.run(f"zstd -dc < '{backup}/files-app.tar.zst' | tar t", shell=True, capture_output=True,
                           text=True, check=True).stdout.split()
    assert "storage/real.sqlite" not in names and "database/database.sqlite" not in names, names
