"""The `mysql` source: MariaDB or MySQL through mariadb-dump / mysqldump.

--single-transaction gives a consistent InnoDB snapshot without locking the
application out; credentials go through a 0600 --defaults-extra-file. A dump
is complete only when it ends with mysqldump's "-- Dump completed" footer:
a dump cut short (killed, disk full on the server side) is caught even when
the process claims success.
"""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

from vigil.config import MysqlSource as MysqlConfig, read_secret
from vigil.errors import BackupError
from vigil.sources.dbtools import Child, DatabaseSource, child_env, feed, run, secret_file, which

FOOTER = b"-- Dump completed"
SYSTEM_DBS = {"information_schema", "performance_schema", "mysql", "sys"}
DUMP_OPTIONS = ["--single-transaction", "--quick", "--routines", "--triggers", "--events", "--hex-blob",
                "--default-character-set=utf8mb4", "--no-tablespaces"]


def quote_ident(name: str) -> str:
    return "`" + name.replace("`", "``") + "`"


def quote_literal(text: str) -> str:
    return "'" + text.replace("\\", "\\\\").replace("'", "''") + "'"


def _option_value(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _rows(batch_output: str) -> list[list[str]]:
    return [line.split("\t") for line in batch_output.splitlines()]


def _counts(rows: list[list[str]]) -> dict[str, int]:
    return {table: int(n) for table, n in rows}


def footer_ok(tail: bytes) -> bool:
    return FOOTER in tail


class Mysql:
    def __init__(self, cfg: MysqlConfig, tmp_dir: Path, label: str) -> None:
        self.cfg = cfg
        self.tmp_dir = tmp_dir
        self.label = label
        self._password = read_secret(label, "password", cfg.password, cfg.password_env, cfg.password_file)

    @staticmethod
    def dump_tool() -> str:
        tool = which("mariadb-dump", "mysqldump")
        if not tool:
            raise BackupError("neither mariadb-dump nor mysqldump is installed (install mariadb-client)")
        return tool

    @staticmethod
    def client_tool() -> str:
        tool = which("mariadb", "mysql")
        if not tool:
            raise BackupError("neither mariadb nor mysql client is installed (install mariadb-client)")
        return tool

    @contextmanager
    def defaults(self) -> Iterator[str]:
        lines = ["[client]"]
        for key in ("host", "port", "socket", "user"):
            value = getattr(self.cfg, key)
            if value is not None:
                lines.append(f"{key}={_option_value(str(value))}")
        if self._password is not None:
            lines.append(f"password={_option_value(self._password)}")
        with secret_file(self.tmp_dir, "\n".join(lines) + "\n", "my-") as path:
            yield f"--defaults-extra-file={path}"

    def client(self, opt: str, statement: str, database: str | None = None) -> list[str]:
        """The client's command line running `statement`, tab-separated rows out."""
        argv = [self.client_tool(), opt, "--connect-timeout=10", "--batch", "--skip-column-names", "--raw",
                "-e", statement]
        return argv + [database] if database else argv

    def sql(self, statement: str, database: str | None = None) -> list[list[str]]:
        with self.defaults() as opt:
            argv = self.client(opt, statement, database)
            out = run(argv, child_env(), f"{self.label}: {Path(argv[0]).name}")
        return _rows(out)

    def check(self) -> None:
        self.sql("SELECT VERSION()")

    def databases(self) -> list[str]:
        if self.cfg.databases == "all":
            return [r[0] for r in self.sql("SHOW DATABASES") if r[0] not in SYSTEM_DBS]
        if isinstance(self.cfg.databases, list):
            return list(self.cfg.databases)
        assert self.cfg.database
        return [self.cfg.database]

    def counts_sql(self, database: str) -> str | None:
        """One consistent-snapshot statement counting every base table's rows, or None without tables."""
        tables = [r[0] for r in self.sql(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = "
            f"{quote_literal(database)} AND table_type = 'BASE TABLE' ORDER BY 1")]
        if not tables:
            return None
        union = " UNION ALL ".join(f"SELECT {quote_literal(t)}, COUNT(*) FROM {quote_ident(t)}" for t in tables)
        return f"START TRANSACTION WITH CONSISTENT SNAPSHOT; {union}; COMMIT"

    def row_counts(self, database: str) -> dict[str, int]:
        sql = self.counts_sql(database)
        return _counts(self.sql(sql, database)) if sql else {}

    def dump(self, database: str, write: Callable[[bytes], None]) -> dict[str, int]:
        tail = bytearray()

        def keep_tail(chunk: bytes) -> None:
            tail.extend(chunk[-256:])
            del tail[:-256]
            write(chunk)

        counts_sql = self.counts_sql(database)  # also the connection check: a refused one is retried
        out = bytearray()
        with self.defaults() as opt:
            # mariadb-dump cannot share its snapshot: the counts take their own, as the dump
            # starts, and the server counts while the dump streams (counting first made the
            # dump wait for it). Exact on a quiet database, approximate under writes.
            counting = Child(self.client(opt, counts_sql, database), child_env(),
                             f"{self.label}: row counts of {database}") if counts_sql else None
            try:
                with Child([self.dump_tool(), opt, *DUMP_OPTIONS, database], child_env(),
                           f"{self.label}: dump of {database}") as child:
                    child.stream_to(keep_tail)
                    child.finish()
                if counting:
                    counting.stream_to(out.extend)
                    counting.finish()
            finally:
                if counting:
                    counting.kill()  # still counting when the dump failed
        if not footer_ok(bytes(tail)):
            raise BackupError(f"{self.label}: dump of {database} is truncated (no '-- Dump completed' footer)")
        return _counts(_rows(out.decode()))

    # --- restore side -------------------------------------------------------------

    def create_database(self, name: str, force: bool) -> bool:
        exists = self.sql(f"SELECT COUNT(*) FROM information_schema.schemata WHERE schema_name = {quote_literal(name)}")
        if exists and exists[0][0] != "0":
            tables = self.sql("SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = "
                              f"{quote_literal(name)}")
            if tables[0][0] != "0" and not force:
                raise BackupError(f"database {name} exists and is not empty ({tables[0][0]} tables); "
                                  "use --force to restore into it")
            return True
        self.sql(f"CREATE DATABASE {quote_ident(name)} CHARACTER SET utf8mb4")
        return False

    def drop_database(self, name: str) -> None:
        self.sql(f"DROP DATABASE IF EXISTS {quote_ident(name)}")

    def load(self, name: str, chunks: Iterable[bytes], **_: Any) -> None:
        with self.defaults() as opt:
            feed([self.client_tool(), opt, "--binary-mode", name], child_env(), f"{self.label}: load into {name}",
                 chunks)


class MysqlSource(DatabaseSource):
    kind, extension = "mysql", "sql"

    def find_tools(self) -> None:
        Mysql.dump_tool()
        Mysql.client_tool()
