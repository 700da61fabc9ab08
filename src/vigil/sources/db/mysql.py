"""The `mysql` source: MariaDB or MySQL through mariadb-dump / mysqldump.

--single-transaction gives a consistent InnoDB snapshot without locking the
application out; credentials go through a 0600 --defaults-extra-file. A dump
is complete only when it ends with mysqldump's "-- Dump completed" footer:
a dump cut short (killed, disk full on the server side) is caught even when
the process claims success.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from vigil.config.schema import MysqlSource as MysqlConfig
from vigil.config.secrets import read_secret
from vigil.errors import BackupError, Damaged, VigilError
from vigil.pipeline.reading import ArtifactReader
from vigil.sources.base import OK, PROBLEM, Check
from vigil.sources.db.dumprows import DumpRowCounter
from vigil.sources.db.process import Child, DatabaseSource, feed, run, secret_file, tool_env, which

FOOTER = b"-- Dump completed"
SYSTEM_DBS = {"information_schema", "performance_schema", "mysql", "sys"}
# What DUMP_OPTIONS need on each database: SELECT (tables), SHOW VIEW (views), TRIGGER (--triggers),
# EVENT (--events). --single-transaction takes no LOCK TABLES and --no-tablespaces needs no PROCESS.
DUMP_PRIVILEGES = ["SELECT", "SHOW VIEW", "TRIGGER", "EVENT"]
DUMP_OPTIONS = ["--single-transaction", "--quick", "--routines", "--triggers", "--events", "--hex-blob",
                "--default-character-set=utf8mb4", "--no-tablespaces"]


def quote_ident(name: str) -> str:
    return "`" + name.replace("`", "``") + "`"


def quote_literal(text: str) -> str:
    return "'" + text.replace("\\", "\\\\").replace("'", "''") + "'"


def _option_value(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


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

    def sql(self, statement: str, database: str | None = None) -> list[list[str]]:
        with self.defaults() as opt:
            argv = [self.client_tool(), opt, "--connect-timeout=10", "--batch", "--skip-column-names", "--raw",
                    "-e", statement]
            if database:
                argv.append(database)
            out = run(argv, tool_env(), f"{self.label}: {Path(argv[0]).name}")
        return [line.split("\t") for line in out.splitlines()]

    def check(self) -> None:
        self.sql("SELECT VERSION()")

    def databases(self) -> list[str]:
        if self.cfg.databases == "all":
            return [r[0] for r in self.sql("SHOW DATABASES") if r[0] not in SYSTEM_DBS]
        if isinstance(self.cfg.databases, list):
            return list(self.cfg.databases)
        assert self.cfg.database
        return [self.cfg.database]

    def tables(self, database: str) -> list[str]:
        return [r[0] for r in self.sql(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = "
            f"{quote_literal(database)} AND table_type = 'BASE TABLE' ORDER BY 1")]

    def row_counts(self, database: str, tables: list[str] | None = None) -> dict[str, int]:
        """COUNT(*) of every base table (or of `tables`), in one consistent snapshot."""
        tables = self.tables(database) if tables is None else tables
        if not tables:
            return {}
        union = " UNION ALL ".join(f"SELECT {quote_literal(t)}, COUNT(*) FROM {quote_ident(t)}" for t in tables)
        rows = self.sql(f"START TRANSACTION WITH CONSISTENT SNAPSHOT; {union}; COMMIT", database)
        return {table: int(n) for table, n in rows}

    def dump(self, database: str, write: Callable[[bytes], None]) -> dict[str, int]:
        """Stream the dump; return the rows of every base table, read from the dump itself."""
        tables = self.tables(database)  # also the connection check: a refused one is retried
        counter = DumpRowCounter()
        tail = bytearray()
        on_server: list[_ServerCount] = []  # MySQL's layout: the server counts beside the dump

        def take(chunk: bytes) -> None:
            if not tail and b"-- MySQL dump" in chunk[:512]:  # its first lines name the tool
                on_server.append(_ServerCount(self, database, tables))
            write(chunk)
            counter.feed(chunk)
            tail.extend(chunk[-256:])
            del tail[:-256]

        with self.defaults() as opt, Child([self.dump_tool(), opt, *DUMP_OPTIONS, database], tool_env(),
                                           f"{self.label}: dump of {database}") as child:
            child.stream_to(take)
            child.finish()
        for thread in on_server:
            thread.join()
            if thread.error is not None:
                raise thread.error
        if not footer_ok(bytes(tail)):
            raise BackupError(f"{self.label}: dump of {database} is truncated (no '-- Dump completed' footer)")
        counts = {t: counter.rows.get(t, 0) for t in tables}
        # A table without its LOCK line (skip-add-locks) has no data section found here.
        unread = counter.uncertain | (set(tables) - counter.rows.keys())
        uncertain = [t for t in tables if t in unread]
        if uncertain:  # layouts not read here: the server's counts, in a snapshot of their own
            logging.getLogger("vigil").debug("%s: rows of %s counted by the server, not read from the dump",
                                             self.label, ", ".join(uncertain))
            server = on_server[0].counts if on_server else self.row_counts(database, uncertain)
            counts.update({t: server[t] for t in uncertain})
        return counts

    # --- privileges ---------------------------------------------------------------

    def account(self) -> str:
        """The account the server matched the login to, quoted for a GRANT: 'backup'@'%'."""
        [[current]] = self.sql("SELECT CURRENT_USER()")
        user, _, host = current.rpartition("@")
        return f"{quote_literal(user)}@{quote_literal(host)}"

    def missing_privileges(self, database: str, account: str, version: str) -> list[tuple[str, str]]:
        """(what, GRANT that gives it) for each privilege the dump of `database` lacks.

        Read from information_schema, which shows an account its own grants: global ones, and
        those on schemas whose name pattern (`app\\_%`) matches the database."""
        rows = self.sql(
            "SELECT 'global', PRIVILEGE_TYPE FROM information_schema.USER_PRIVILEGES "
            f"WHERE GRANTEE = {quote_literal(account)} UNION ALL "
            "SELECT TABLE_SCHEMA, PRIVILEGE_TYPE FROM information_schema.SCHEMA_PRIVILEGES "
            f"WHERE GRANTEE = {quote_literal(account)} AND ({quote_literal(database)} LIKE TABLE_SCHEMA "
            "OR 'mysql' LIKE TABLE_SCHEMA) UNION ALL "
            "SELECT CONCAT(TABLE_SCHEMA, '.', TABLE_NAME), PRIVILEGE_TYPE FROM information_schema.TABLE_PRIVILEGES "
            f"WHERE GRANTEE = {quote_literal(account)} AND TABLE_SCHEMA = 'mysql' AND TABLE_NAME = 'proc'")
        glob = {p for scope, p in rows if scope == "global"}
        on_db = glob | {p for scope, p in rows if scope not in ("global", "mysql.proc")
                        and _like(database, scope)}
        on_mysql = glob | {p for scope, p in rows if scope != "global" and _like("mysql", scope)}
        missing = [(f"{p} on {database}", f"GRANT {p} ON {quote_ident(database)}.* TO {account};")
                   for p in DUMP_PRIVILEGES if p not in on_db]
        routines = _routine_privilege(version, glob, on_mysql, {p for s, p in rows if s == "mysql.proc"})
        if routines is not None and "EXECUTE" in on_db and not self.sql(
                "SELECT 1 FROM information_schema.ROUTINES WHERE ROUTINE_SCHEMA = "
                f"{quote_literal(database)} LIMIT 1"):
            routines = None  # EXECUTE shows the account every routine: there are none to lose
        if routines is not None:
            missing.append((f"{routines[0]}, which --routines needs to read the stored procedures and functions "
                            f"of {database} (without it the dump fails on them, or leaves out those the "
                            "account cannot see, without an error)",
                            routines[1].format(account=account)))
        return missing

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
            feed([self.client_tool(), opt, "--binary-mode", name], tool_env(), f"{self.label}: load into {name}",
                 chunks)


def _like(text: str, pattern: str) -> bool:
    """SQL LIKE with backslash escapes: how a schema-level grant's name matches a database."""
    regex = "".join(".*" if ch == "%" else "." if ch == "_" else re.escape(ch[-1])
                    for ch in re.findall(r"\\.|.", pattern, re.S))
    return re.fullmatch(regex, text, re.S) is not None


def _routine_privilege(version: str, glob: set[str], on_mysql: set[str], on_proc: set[str]) -> \
        tuple[str, str] | None:
    """(privilege, GRANT with {account}) that lets the dump read routine bodies, when the account lacks it."""
    numbers = [int(n) for n in re.findall(r"\d+", version.split("-")[0])[:3]] + [0, 0, 0]
    if "mariadb" in version.lower():
        if numbers[:2] >= [11, 3]:
            if "SHOW CREATE ROUTINE" in glob or "SELECT" in on_mysql | on_proc:
                return None
            return "SHOW CREATE ROUTINE", "GRANT SHOW CREATE ROUTINE ON *.* TO {account};"
        if "SELECT" in on_mysql | on_proc:
            return None
        return "SELECT on mysql.proc", "GRANT SELECT ON mysql.proc TO {account};"
    if numbers[:3] >= [8, 0, 20]:
        if "SHOW_ROUTINE" in glob or "SELECT" in glob:
            return None
        return "SHOW_ROUTINE", "GRANT SHOW_ROUTINE ON *.* TO {account};"
    return None if "SELECT" in on_mysql | on_proc else \
        ("SELECT on mysql.proc", "GRANT SELECT ON mysql.proc TO {account};")


class _ServerCount(threading.Thread):
    """COUNT(*) of every table on the server, while the dump streams."""

    def __init__(self, engine: Mysql, database: str, tables: list[str]) -> None:
        super().__init__(name="vigil-mysql-count", daemon=True)
        self.engine, self.database, self.tables = engine, database, tables
        self.counts: dict[str, int] = {}
        self.error: BackupError | None = None
        logging.getLogger("vigil").debug("%s: MySQL's one-line INSERTs: the server counts rows beside the dump",
                                         engine.label)
        self.start()

    def run(self) -> None:
        try:
            self.counts = self.engine.row_counts(self.database, self.tables)
        except BackupError as exc:
            self.error = exc


class MysqlSource(DatabaseSource):
    kind, extension = "mysql", "sql"

    def client(self, cfg: MysqlConfig | None = None) -> Mysql:
        return Mysql(cfg or self.settings(), self.tmp_dir, self.label)

    def find_tools(self) -> None:
        Mysql.dump_tool()
        Mysql.client_tool()

    def verify_deep(self, reader: ArtifactReader, related: list[ArtifactReader]) -> None:
        tail = b""
        for chunk in reader.plain():
            tail = (tail + chunk)[-512:]
        if not footer_ok(tail):
            raise Damaged(f"{reader.where}: SQL dump is truncated (no '-- Dump completed' footer)")

    def doctor(self) -> Iterator[Check]:
        try:
            tool = Mysql.dump_tool()
        except VigilError as exc:
            yield Check(PROBLEM, "tools", f"source {self.name}: {exc}", "install the client tools")
            return
        # Connect with the job's own credentials (the option file a run writes) and ask the server.
        yield Check(OK, "tools", f"source {self.name}: {tool} present")
        try:
            rows = self.client().sql("SELECT VERSION()")
        except VigilError as exc:
            yield Check(PROBLEM, "database", f"source {self.name}: cannot connect: {exc}",
                        "check host, port or socket, user and password")
            return
        version = rows[0][0] if rows and rows[0] else "unknown version"
        yield Check(OK, "database", f"source {self.name}: connects as {self.cfg.user or 'the default user'} "
                                    f"(server {version})")
        yield from self._privileges(version)

    def _privileges(self, version: str) -> Iterator[Check]:
        """Every privilege the dump needs with vigil's own flags, each missing one named with its GRANT."""
        client = self.client()
        try:
            account = client.account()
            found = [(db, client.missing_privileges(db, account, version)) for db in client.databases()]
        except VigilError as exc:
            yield Check(PROBLEM, "privileges", f"source {self.name}: cannot read the account's privileges: {exc}",
                        "see docs/install.md for the GRANTs a dump needs")
            return
        for _db, missing in found:
            for what, grant in missing:
                yield Check(PROBLEM, "privileges", f"source {self.name}: {account} lacks {what}", grant)
        if not any(missing for _, missing in found):
            yield Check(OK, "privileges", f"source {self.name}: {account} has every privilege the dump needs "
                        f"({', '.join(DUMP_PRIVILEGES)}, and to read routines)")
