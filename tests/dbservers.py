"""Throw-away PostgreSQL and MariaDB servers on 127.0.0.1, in temporary directories."""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from servers import free_port

PG_PASSWORD = "pg-pässword:with\\odd chars"
MY_PASSWORD = "my-pässword \"quoted\" #hash"


def _pg_bin(name: str) -> str:
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"), key=lambda p: int(p.split("/")[4]))
    if found:
        return found[-1]
    return shutil.which(name) or name


@dataclass
class Postgres:
    port: int
    dir: Path
    user: str = "postgres"
    password: str = PG_PASSWORD

    def _as_owner(self) -> list[str]:
        return ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []

    def start(self) -> None:
        pwfile = self.dir / "pw"
        pwfile.write_text(self.password + "\n")
        if os.geteuid() == 0:  # initdb refuses root: the cluster belongs to the postgres user
            pw = pwd.getpwnam("postgres")
            for p in (self.dir, pwfile):
                os.chown(p, pw.pw_uid, pw.pw_gid)
        subprocess.run(self._as_owner() + [_pg_bin("initdb"), "-D", str(self.dir / "data"), "-U", "postgres",
                                           "--auth-local=trust", "--auth-host=scram-sha-256",
                                           f"--pwfile={pwfile}", "-E", "UTF8", "--locale=C.UTF-8"],
                       check=True, capture_output=True)
        subprocess.run(self._as_owner() + [
            _pg_bin("pg_ctl"), "-D", str(self.dir / "data"), "-l", str(self.dir / "log"), "-w", "-t", "60",
            "-o", f"-c listen_addresses=127.0.0.1 -p {self.port} -k {self.dir} -c fsync=off "
                  f"-c max_connections=50 -c shared_buffers=32MB", "start"], check=True, capture_output=True)

    def stop(self) -> None:
        subprocess.run(self._as_owner() + [_pg_bin("pg_ctl"), "-D", str(self.dir / "data"), "-m", "immediate",
                                           "-w", "stop"], capture_output=True)

    def psql(self, sql: str, db: str = "postgres", check: bool = True) -> str:
        env = {**os.environ, "PGPASSWORD": self.password}
        proc = subprocess.run([_pg_bin("psql"), "-X", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-h", "127.0.0.1",
                               "-p", str(self.port), "-U", self.user, "-d", db, "-c", sql],
                              capture_output=True, text=True, env=env)
        if check and proc.returncode != 0:
            raise AssertionError(proc.stderr)
        return proc.stdout.strip()

    def background(self, sql: str, db: str) -> subprocess.Popen:
        env = {**os.environ, "PGPASSWORD": self.password}
        return subprocess.Popen([_pg_bin("psql"), "-X", "-q", "-h", "127.0.0.1", "-p", str(self.port), "-U",
                                 self.user, "-d", db, "-c", sql], env=env, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)


@dataclass
class Mariadb:
    port: int
    dir: Path
    user: str = "backup"
    password: str = MY_PASSWORD
    proc: subprocess.Popen | None = None

    @property
    def socket(self) -> Path:
        return self.dir / "sock"

    def start(self) -> None:
        datadir = self.dir / "data"
        root = ["--user=root"] if os.geteuid() == 0 else []
        subprocess.run(["mariadb-install-db", "--no-defaults", f"--datadir={datadir}", "--skip-test-db",
                        "--auth-root-authentication-method=normal", *root], check=True, capture_output=True)
        self.proc = subprocess.Popen(
            [shutil.which("mariadbd") or "/usr/sbin/mariadbd", "--no-defaults", f"--datadir={datadir}",
             f"--socket={self.socket}", f"--port={self.port}", "--bind-address=127.0.0.1",
             f"--pid-file={self.dir / 'pid'}", f"--log-error={self.dir / 'err'}", "--skip-name-resolve",
             "--innodb-buffer-pool-size=64M", "--innodb-flush-log-at-trx-commit=0", *root],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.time() + 60
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"mariadbd exited: {(self.dir / 'err').read_text()[-2000:]}")
            if self.root_sql("SELECT 1", check=False) == "1":
                break
            time.sleep(0.2)
        else:
            raise RuntimeError(f"mariadbd did not start: {(self.dir / 'err').read_text()[-2000:]}")
        pw = self.password.replace("\\", "\\\\").replace("'", "\\'")
        self.root_sql(f"CREATE USER '{self.user}'@'%' IDENTIFIED BY '{pw}'; "
                      f"GRANT ALL ON *.* TO '{self.user}'@'%' WITH GRANT OPTION;")

    def stop(self) -> None:
        if self.proc:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def root_sql(self, sql: str, db: str | None = None, check: bool = True) -> str:
        proc = subprocess.run(["mariadb", "--no-defaults", f"--socket={self.socket}", "-uroot", "-N", "-B",
                               "--default-character-set=utf8mb4",
                               "-e", sql] + ([db] if db else []), capture_output=True, text=True)
        if check and proc.returncode != 0:
            raise AssertionError(proc.stderr)
        return proc.stdout.strip()

    def background(self, sql: str, db: str) -> subprocess.Popen:
        return subprocess.Popen(["mariadb", "--no-defaults", f"--socket={self.socket}", "-uroot", "-e", sql, db],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def _tcp_ok(port: int) -> bool:
    import socket

    with socket.socket() as s:
        s.settimeout(2)
        return s.connect_ex(("127.0.0.1", port)) == 0


def _start(make, attempts: int = 3):
    """free_port() can race with other test workers: retry on a fresh port if TCP is not ours."""
    for attempt in range(attempts):
        server = make()
        try:
            server.start()
            if _tcp_ok(server.port):
                return server
        except (subprocess.CalledProcessError, RuntimeError):
            if attempt == attempts - 1:
                raise
        server.stop()
        shutil.rmtree(server.dir, ignore_errors=True)
    raise RuntimeError("could not start a test database server on a free port")


def start_postgres() -> Postgres:
    def make() -> Postgres:
        server = Postgres(port=free_port(), dir=Path(tempfile.mkdtemp(prefix="vigil-pg-")))
        server.dir.chmod(0o755)
        return server

    return _start(make)


def start_mariadb() -> Mariadb:
    return _start(lambda: Mariadb(port=free_port(), dir=Path(tempfile.mkdtemp(prefix="vigil-my-"))))
