"""The `postgres` source: pg_dump -Fc -Z0, compressed by vigil with zstd.

pg_dump's own zlib is the slow part of a dump; zstd outside is faster and
smaller. A `psql` session opens a REPEATABLE READ transaction and exports its
snapshot; pg_dump dumps exactly that snapshot (--snapshot) and the same
session then counts every table's rows in it, so the manifest's row counts
describe the dump exactly, even while the application writes.
"""

from __future__ import annotations

import glob
import re
import subprocess
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from functools import cache
from pathlib import Path
from urllib.parse import parse_qsl, unquote, urlparse

from vigil.config.schema import PostgresSource as PostgresConfig
from vigil.config.secrets import read_secret
from vigil.errors import BackupError, Damaged, VigilError
from vigil.pipeline.reading import ArtifactReader
from vigil.sources.base import OK, PROBLEM, Check
from vigil.sources.db.process import Child, DatabaseSource, classify, feed, run, secret_file, tool_env

END = "__VIGIL_END__"
SEP = "\x1f"
_URI_ENV = {"host": "PGHOST", "port": "PGPORT", "user": "PGUSER", "dbname": "PGDATABASE",
            "sslmode": "PGSSLMODE", "sslrootcert": "PGSSLROOTCERT", "application_name": "PGAPPNAME",
            "connect_timeout": "PGCONNECT_TIMEOUT"}


def quote_ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def quote_literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def parse_dsn(dsn: str) -> tuple[dict[str, str], str | None]:
    """libpq DSN (URI or key=value) → (PG* environment, password)."""
    params: dict[str, str] = {}
    if dsn.startswith(("postgres://", "postgresql://")):
        u = urlparse(dsn)
        if u.hostname:
            params["host"] = unquote(u.hostname)
        if u.port:
            params["port"] = str(u.port)
        if u.username:
            params["user"] = unquote(u.username)
        if u.password:
            params["password"] = unquote(u.password)
        if u.path.strip("/"):
            params["dbname"] = unquote(u.path.strip("/"))
        params.update(parse_qsl(u.query))
    else:
        for m in re.finditer(r"(\w+)\s*=\s*('(?:[^'\\]|\\.)*'|\S+)", dsn):
            value = m.group(2)
            params[m.group(1)] = value[1:-1].replace("\\'", "'") if value.startswith("'") else value
    password = params.pop("password", None)
    env = {_URI_ENV[k]: v for k, v in params.items() if k in _URI_ENV}
    return env, password


@cache
def _version_of(binary: str) -> int:
    debian = re.fullmatch(r"/usr/lib/postgresql/(\d+)/bin/\w+", binary)
    if debian:  # the directory says it; asking the binary would cost a process per run
        return int(debian.group(1))
    out = subprocess.run([binary, "--version"], capture_output=True, text=True, check=False).stdout
    m = re.search(r"(\d+)(?:\.(\d+))?", out)
    return int(m.group(1)) if m else 0


@cache
def find_tool(name: str, server_major: int | None = None) -> str:
    """The newest installed client tool, preferring Debian's versioned directories."""
    candidates = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"),
                        key=lambda p: int(p.split("/")[4]) if p.split("/")[4].isdigit() else 0, reverse=True)
    from shutil import which

    on_path = which(name)
    if on_path:
        candidates.append(on_path)
    if not candidates:
        raise BackupError(f"{name} not found (install postgresql-client)")
    if server_major is None:
        return candidates[0]
    for c in candidates:
        if _version_of(c) >= server_major:
            return c
    raise BackupError(
        f"{name} {_version_of(candidates[0])} cannot dump a PostgreSQL {server_major} server; "
        f"install postgresql-client-{server_major} or newer"
    )


class Postgres:
    """Talks to one PostgreSQL server with the source's connection settings."""

    def __init__(self, cfg: PostgresConfig, tmp_dir: Path, label: str) -> None:
        self.cfg = cfg
        self.tmp_dir = tmp_dir
        self.label = label
        env: dict[str, str] = {}
        password = None
        if cfg.dsn:
            env, password = parse_dsn(cfg.dsn)
        for key, var in (("host", "PGHOST"), ("port", "PGPORT"), ("user", "PGUSER")):
            if getattr(cfg, key) is not None:
                env[var] = str(getattr(cfg, key))
        self.base_env = env
        self._password = read_secret(label, "password", cfg.password, cfg.password_env, cfg.password_file) \
            or password
        self.server_major: int | None = None

    @contextmanager
    def env(self, database: str | None = None) -> Iterator[dict[str, str]]:
        extra = dict(self.base_env)
        if database:
            extra["PGDATABASE"] = database
        extra.setdefault("PGCONNECT_TIMEOUT", "10")
        if self._password is None:
            yield tool_env(**extra)
            return
        escaped = self._password.replace("\\", "\\\\").replace(":", "\\:")
        with secret_file(self.tmp_dir, f"*:*:*:*:{escaped}\n", "pgpass-") as passfile:
            yield tool_env(PGPASSFILE=str(passfile), **extra)

    def default_database(self) -> str:
        return self.cfg.database or self.base_env.get("PGDATABASE") or "postgres"

    def psql(self, sql: str, database: str | None = None) -> list[list[str]]:
        with self.env(database or self.default_database()) as env:
            out = run([find_tool("psql"), "-X", "-A", "-t", "-q", "-F", SEP, "-v", "ON_ERROR_STOP=1",
                       "-c", sql], env, f"{self.label}: psql")
        return [line.split(SEP) for line in out.splitlines() if line]

    VERSION_SQL = "SHOW server_version_num"

    def check(self) -> None:
        """Connect, learn the server version, make sure pg_dump can dump it."""
        [[version]] = self.psql(self.VERSION_SQL)
        self.pg_dump_for(version)

    def pg_dump_for(self, server_version_num: str) -> str:
        """The pg_dump that can dump a server reporting this version (BackupError if none)."""
        self.server_major = int(server_version_num) // 10000
        return find_tool("pg_dump", self.server_major)

    def databases(self) -> list[str]:
        if self.cfg.databases == "all":
            return [r[0] for r in self.psql(
                "SELECT datname FROM pg_database WHERE NOT datistemplate AND datallowconn ORDER BY 1")]
        if isinstance(self.cfg.databases, list):
            return list(self.cfg.databases)
        return [self.default_database()]

    def tables_sql(self) -> str:
        return ("SELECT n.nspname, c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
                " WHERE c.relkind IN ('r', 'p') AND n.nspname NOT IN ('pg_catalog', 'information_schema')"
                " AND n.nspname NOT LIKE 'pg_toast%' ORDER BY 1, 2")

    def counts_sql(self, tables: list[list[str]]) -> str | None:
        if not tables:
            return None
        return " UNION ALL ".join(
            f"SELECT {quote_literal(s + '.' + t)}, count(*) FROM {quote_ident(s)}.{quote_ident(t)}"
            for s, t in tables)

    def row_counts(self, database: str) -> dict[str, int]:
        sql = self.counts_sql(self.psql(self.tables_sql(), database))
        return {r[0]: int(r[1]) for r in self.psql(sql, database)} if sql else {}

    def dump(self, database: str, write: Callable[[bytes], None]) -> dict[str, int]:
        """Stream a custom-format dump; return row counts of the same snapshot."""
        with self.env(database) as env, _Session(find_tool("psql"), env, self.label) as session:
            # This session is also the connection check: one client start fewer before the dump.
            [[version]] = session.query(self.VERSION_SQL)
            pg_dump = self.pg_dump_for(version)
            session.query("BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            # The counts run while pg_dump streams: one server process for
            # them, so that parallel workers do not take the cores pg_dump needs.
            session.query("SET LOCAL max_parallel_workers_per_gather = 0")
            if (self.server_major or 0) >= 11:
                # A count over every table is costly enough on paper to be JIT-compiled, with
                # inlining and optimisation past a few big tables: compile time, no gain.
                session.query("SET LOCAL jit = off")
            [[snapshot]] = session.query("SELECT pg_export_snapshot()")
            sql = self.counts_sql(session.query(self.tables_sql()))
            if sql:
                session.send(sql)  # counted by the server while pg_dump streams: same snapshot
            with Child([pg_dump, "-Fc", "-Z0", f"--snapshot={snapshot}", "--no-password"], env,
                       f"{self.label}: pg_dump of {database}") as child:
                child.stream_to(write)
                child.finish()
            counts = {r[0]: int(r[1]) for r in session.receive()} if sql else {}
            session.query("COMMIT")
        return counts

    # --- privileges ---------------------------------------------------------------

    # What pg_dump reads and the connected role may not: schemas (USAGE), tables and sequences
    # (SELECT), large objects (SELECT). A superuser, or lo_compat_privileges, reads everything.
    MISSING_SQL = (
        "SELECT 'schema', n.nspname, '' FROM pg_namespace n WHERE n.nspname NOT IN ('information_schema')"
        " AND n.nspname NOT LIKE 'pg\\_%' AND NOT has_schema_privilege(n.oid, 'USAGE')"
        " UNION ALL SELECT CASE WHEN c.relkind = 'S' THEN 'sequence' ELSE 'table' END, n.nspname, c.relname"
        " FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
        " WHERE c.relkind IN ('r', 'p', 'S') AND n.nspname NOT IN ('information_schema')"
        " AND n.nspname NOT LIKE 'pg\\_%' AND NOT has_table_privilege(c.oid, 'SELECT')"
        " UNION ALL SELECT 'large object', m.oid::text, '' FROM pg_largeobject_metadata m"
        " WHERE current_setting('lo_compat_privileges') = 'off' AND NOT pg_has_role(m.lomowner, 'USAGE')"
        " AND NOT EXISTS (SELECT 1 FROM aclexplode(m.lomacl) a WHERE a.privilege_type = 'SELECT'"
        " AND (a.grantee = 0 OR pg_has_role(a.grantee, 'USAGE')))"
        " ORDER BY 1, 2, 3")

    def missing_privileges(self, database: str) -> tuple[str, list[tuple[str, str]]]:
        """The connected role, and (what, GRANT that gives it) for each thing in `database` pg_dump cannot read."""
        [[role, superuser]] = self.psql("SELECT current_user, rolsuper FROM pg_roles WHERE rolname = current_user",
                                        database)
        if superuser == "t":
            return role, []
        who = quote_ident(role)
        missing: list[tuple[str, str]] = []
        for kind, schema, name in self.psql(self.MISSING_SQL, database):
            if kind == "schema":
                missing.append((f"USAGE on schema {schema}", f"GRANT USAGE ON SCHEMA {quote_ident(schema)} TO {who};"))
            elif kind == "large object":
                missing.append((f"SELECT on large object {schema}", f"GRANT SELECT ON LARGE OBJECT {schema} TO {who};"))
            else:
                what = "TABLES" if kind == "table" else "SEQUENCES"
                missing.append((f"SELECT on {kind} {schema}.{name}",
                                f"GRANT SELECT ON ALL {what} IN SCHEMA {quote_ident(schema)} TO {who};"))
        return role, missing

    # --- restore side -------------------------------------------------------------

    def create_database(self, name: str, force: bool) -> bool:
        """Create `name`; True if it already existed (and may be overwritten with force)."""
        exists = self.psql(f"SELECT 1 FROM pg_database WHERE datname = {quote_literal(name)}", "postgres")
        if exists:
            tables = self.psql(self.tables_sql(), name)
            if tables and not force:
                raise BackupError(f"database {name} exists and is not empty ({len(tables)} tables); "
                                  "use --force to restore into it")
            return True
        self.psql(f"CREATE DATABASE {quote_ident(name)}", "postgres")
        return False

    def drop_database(self, name: str) -> None:
        self.psql(f"DROP DATABASE IF EXISTS {quote_ident(name)}", "postgres")

    def load(self, name: str, chunks: Iterable[bytes], *, clean: bool = False, scratch: bool = False) -> None:
        """pg_restore a custom-format dump fed from `chunks` into database `name`."""
        argv = [find_tool("pg_restore"), "--exit-on-error", "--no-password", "-d", name]
        if clean:
            argv += ["--clean", "--if-exists"]
        if scratch:
            argv += ["--no-owner", "--no-acl"]
        with self.env(name) as env:
            feed(argv, env, f"{self.label}: pg_restore into {name}", chunks)


class _Session:
    """A psql process kept open to hold a transaction (and its exported snapshot)."""

    def __init__(self, psql: str, env: dict[str, str], label: str) -> None:
        self.label = label
        self.proc = subprocess.Popen(
            [psql, "-X", "-A", "-t", "-q", "-F", SEP, "-v", "ON_ERROR_STOP=1", "--no-password"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env)

    def query(self, sql: str) -> list[list[str]]:
        self.send(sql)
        return self.receive()

    def send(self, sql: str) -> None:
        assert self.proc.stdin
        try:
            self.proc.stdin.write(f"{sql};\n\\echo {END}\n".encode())
            self.proc.stdin.flush()
        except BrokenPipeError:
            pass  # psql is gone: receive() reports why

    def receive(self) -> list[list[str]]:
        assert self.proc.stdout
        rows: list[list[str]] = []
        out: list[str] = []
        for raw in self.proc.stdout:
            line = raw.decode(errors="replace").rstrip("\n")
            if line == END:
                return rows
            out.append(line)
            rows.append(line.split(SEP))
        self.proc.wait()
        raise classify(f"{self.label}: psql", "\n".join(out), self.proc.returncode)

    def __enter__(self) -> _Session:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()


class PostgresSource(DatabaseSource):
    kind, extension = "postgres", "pgdump"

    def client(self, cfg: PostgresConfig | None = None) -> Postgres:
        return Postgres(cfg or self.settings(), self.tmp_dir, self.label)

    def find_tools(self) -> None:
        find_tool("pg_dump")
        find_tool("psql")

    def verify_deep(self, reader: ArtifactReader, related: list[ArtifactReader]) -> None:
        """pg_restore -f /dev/null reads a custom dump to its end (a truncated one fails).
        It connects to nothing: no settings needed."""
        argv = [find_tool("pg_restore"), "-f", "/dev/null"]
        try:
            feed(argv, tool_env(), f"{self.label}: pg_restore check", reader.plain())
        except Damaged:
            raise
        except BackupError as exc:
            raise Damaged(f"{reader.where}: not a readable custom-format dump: {exc}") from None

    def doctor(self) -> Iterator[Check]:
        try:
            engine = self.client()
            try:
                engine.check()  # connects: pg_dump must be able to dump this server's version
                yield Check(OK, "tools", f"source {self.name}: {find_tool('pg_dump', engine.server_major)} "
                                         f"can dump PostgreSQL {engine.server_major}")
                yield from self._privileges(engine)
            except VigilError as exc:
                find_tool("pg_dump")
                yield Check(PROBLEM, "database", f"source {self.name}: cannot connect: {exc}",
                            "check host, port, user and password")
        except VigilError as exc:
            yield Check(PROBLEM, "tools", f"source {self.name}: {exc}", "install the client tools")

    def _privileges(self, engine: Postgres) -> Iterator[Check]:
        """Everything pg_dump must read, each thing the role may not named with its GRANT."""
        try:
            found = [(db, *engine.missing_privileges(db)) for db in engine.databases()]
        except VigilError as exc:
            yield Check(PROBLEM, "privileges", f"source {self.name}: cannot read the role's privileges: {exc}",
                        "see docs/install.md for the GRANTs a dump needs")
            return
        for db, role, missing in found:
            for what, grant in missing[:20]:
                yield Check(PROBLEM, "privileges", f"source {self.name}: role {role} lacks {what} in database {db}",
                            f"{grant} (in database {db}; or GRANT pg_read_all_data TO {quote_ident(role)}; "
                            "on PostgreSQL 14+)")
            if len(missing) > 20:
                yield Check(PROBLEM, "privileges", f"source {self.name}: and {len(missing) - 20} more in {db}",
                            f"GRANT pg_read_all_data TO {quote_ident(role)}; (PostgreSQL 14+)")
        if not any(missing for _, _, missing in found):
            yield Check(OK, "privileges", f"source {self.name}: role {found[0][1] if found else '?'} can read "
                        "every schema, table, sequence and large object the dump needs")
