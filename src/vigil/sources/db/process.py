"""Plumbing shared by the database sources: tools, credentials, child processes.

A dump is a child process whose stdout is streamed into an artifact while its
stderr is collected on a thread; the exit status is checked after EOF, so a
failed producer can never hide behind a pipe. Credentials go into 0600 files
in STATE_DIR/tmp (PGPASSFILE, --defaults-extra-file), never on a command line.
"""

from __future__ import annotations

import array
import fcntl
import os
import re
import secrets
import select
import shutil
import subprocess
import tempfile
import termios
import threading
from abc import abstractmethod
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any, ClassVar

import msgspec

from vigil.children import child_env
from vigil.errors import BackupError, ConfigError, Damaged, PermissionDenied, TransientError
from vigil.pipeline.reading import ArtifactReader
from vigil.retry import with_retry
from vigil.sources.base import ArtifactOutput, Restored, RestoreTarget, Source, check_row_counts

READ = 1 << 20
PIPE_SIZE = 1 << 20
STDERR_KEEP = 16 << 10
MIN_PAUSE_MS, MAX_PAUSE_MS = 1, 64  # _wait: how long it sleeps between looks at a pipe

# Server messages that mean "try again later", for PostgreSQL and MariaDB/MySQL.
TRANSIENT = re.compile(
    r"could not connect|connection refused|can't connect|the database system is (starting up|shutting down)"
    r"|timeout expired|timed out|server closed the connection|lost connection|gone away|too many connections"
    r"|no route to host|could not translate host name|Unknown MySQL server host|errno: 111|\(111\)",
    re.IGNORECASE,
)


def which(*names: str, extra_dirs: list[str] | None = None) -> str | None:
    for name in names:
        for d in extra_dirs or []:
            p = Path(d) / name
            if p.is_file() and os.access(p, os.X_OK):
                return str(p)
        found = shutil.which(name)
        if found:
            return found
    return None


@contextmanager
def secret_file(tmp_dir: Path, content: str, prefix: str) -> Iterator[Path]:
    """A 0600 file holding credentials for the duration of a child's run."""
    tmp_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd, name = tempfile.mkstemp(prefix=prefix, dir=tmp_dir)
    try:
        os.fchmod(fd, 0o600)
        os.write(fd, content.encode())
        os.close(fd)
        yield Path(name)
    finally:
        try:
            os.unlink(name)
        except FileNotFoundError:
            pass


# Server messages that mean "this account may not": PostgreSQL, and MariaDB/MySQL's access errors
# (1044 database, 1045 login, 1142 table, 1227 global privilege, 1370 routine).
DENIED = re.compile(
    r"permission denied|must be owner|must be superuser|must be a member|password authentication failed"
    r"|access denied|command denied|insufficient privileges"
    r"|ERROR 1044|ERROR 1045|ERROR 1142|ERROR 1227|ERROR 1370|\(1044\)|\(1142\)",
    re.IGNORECASE,
)


def classify(what: str, stderr: str, code: int | None = None) -> BackupError:
    """A child's failure as an error: transient (retried) or permanent."""
    lines = [line for line in stderr.strip().splitlines() if line.strip()]
    detail = "; ".join(lines[-3:]) if lines else (f"exit status {code}" if code is not None else "failed")
    if code is not None and code < 0:
        detail = f"killed by signal {-code}" + (f": {detail}" if lines else "")
    cls = TransientError if TRANSIENT.search(stderr) else PermissionDenied if DENIED.search(stderr) else BackupError
    return cls(f"{what}: {detail}")


def run(argv: list[str], env: dict[str, str], what: str, input_: bytes | None = None,
        timeout: float = 300) -> str:
    """Run a client command to completion; its stdout, or a classified error."""
    try:
        proc = subprocess.run(argv, input=input_, capture_output=True, env=env, timeout=timeout, check=False)
    except FileNotFoundError:
        raise BackupError(f"{what}: {argv[0]} not found") from None
    except subprocess.TimeoutExpired:
        raise TransientError(f"{what}: timed out after {timeout:.0f}s") from None
    if proc.returncode != 0:
        raise classify(what, proc.stderr.decode(errors="replace"), proc.returncode)
    return proc.stdout.decode(errors="replace")


def _widen(pipe: IO[bytes]) -> bool:
    """Give a child's stdout or stdin a 1 MiB pipe: a dump then runs on while vigil compresses
    and counts a chunk, where a 64 KiB pipe fills in under a millisecond and stalls it (a 2M-row
    mariadb-dump waits ~1,100 times on a 64 KiB pipe, ~130 on 1 MiB; docs/benchmarks.md). A user over
    the pipe-user-pages-soft quota keeps the default: False."""
    setpipe = getattr(fcntl, "F_SETPIPE_SZ", None)  # Linux only
    if setpipe is None:
        return False
    try:
        return fcntl.fcntl(pipe.fileno(), setpipe, PIPE_SIZE) >= PIPE_SIZE
    except OSError:
        return False


def _available(fd: int) -> int:
    """Bytes queued in a pipe (either end)."""
    count = array.array("i", [0])
    fcntl.ioctl(fd, termios.FIONREAD, count)
    return count[0]


def _closed(fd: int) -> select.poll:
    """A poll that reports only the other end's close (POLLHUP, POLLERR), not data or room."""
    poll = select.poll()
    poll.register(fd, 0)
    return poll


def _wait(fd: int, closed: select.poll, ready: Callable[[int], bool]) -> None:
    """Sleep until ready(bytes queued in the pipe) or the other end is closed: 1 ms at a time
    while the other side moves, doubling up to 64 ms while it is still (a server sorting, a
    lock wait), so that it is looked at less often."""
    pause, queued = MIN_PAUSE_MS, _available(fd)
    while not ready(queued) and not closed.poll(pause):
        now = _available(fd)
        pause = MIN_PAUSE_MS if now != queued else min(2 * pause, MAX_PAUSE_MS)
        queued = now


class Child:
    """A producer process: stdout to read, stderr collected, exit checked."""

    def __init__(self, argv: list[str], env: dict[str, str], what: str, stdin: IO[bytes] | int | None = None,
                 stdout: IO[bytes] | int | None = subprocess.PIPE) -> None:
        self.what = what
        try:
            self.proc = subprocess.Popen(argv, stdin=stdin if stdin is not None else subprocess.DEVNULL,
                                         stdout=stdout, stderr=subprocess.PIPE, env=env)
        except FileNotFoundError:
            raise BackupError(f"{what}: {argv[0]} not found") from None
        self._wide = stdout is subprocess.PIPE and _widen(self.proc.stdout)  # type: ignore[arg-type]
        self._err = bytearray()
        self._thread = threading.Thread(target=self._collect, daemon=True)
        self._thread.start()

    def _collect(self) -> None:
        assert self.proc.stderr is not None
        for chunk in iter(lambda: self.proc.stderr.read(4096), b""):  # type: ignore[union-attr]
            self._err += chunk
            del self._err[:-STDERR_KEEP]

    @property
    def stderr(self) -> str:
        return self._err.decode(errors="replace")

    def stream_to(self, write: Callable[[bytes], None]) -> None:
        """Hand the child's output to `write` in chunks of half a pipe or more.

        A dump writes in 4 KiB pieces. A reader blocked on the pipe is woken
        for each of them: 45,000 wake-ups for a 342 MB mariadb-dump, which cost
        the dump and vigil ~0.2 CPU-s together (docs/benchmarks.md).
        Instead vigil sleeps until half of the 1 MiB pipe has filled, or the
        child has closed its end; the other half keeps the dump writing."""
        assert self.proc.stdout is not None
        if not self._wide:  # a 64 KiB pipe fills faster than a sleep ends: blocking reads
            while chunk := self.proc.stdout.read(READ):
                write(chunk)
            return
        fd = self.proc.stdout.fileno()
        closed = _closed(fd)
        while True:
            _wait(fd, closed, lambda queued: queued >= PIPE_SIZE // 2)
            chunk = os.read(fd, READ)
            if not chunk:
                return
            write(chunk)

    def finish(self) -> None:
        """Wait for the child; raise a classified error when it failed."""
        code = self.proc.wait()
        self._thread.join()
        if code != 0:
            raise classify(self.what, self.stderr, code)

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self._thread.join(timeout=5)

    def __enter__(self) -> Child:
        return self

    def __exit__(self, *exc: object) -> None:
        self.kill()  # on any way out; a finished child is left alone


class DatabaseSource(Source):
    """What the postgres and mysql sources share: connect with retries, then one
    artifact per database, each dump retried as a whole on transient errors; read
    back, a dump is loaded into a scratch database or restored into a new one."""

    extension: ClassVar[str]  # pgdump | sql

    @abstractmethod
    def client(self, cfg: Any = None) -> Any:
        """The client (Postgres or Mysql) for this source's server, built from its settings
        (or from `cfg`, the same settings with another account)."""

    def engine(self) -> Any:
        """The client. It reads the password now: one that cannot be read is a
        ConfigError naming the job file."""
        try:
            return self.client()
        except ConfigError as exc:
            raise ConfigError(f"{self.ctx.job.config_path}: {exc}") from None

    def restore_engine(self) -> Any:
        """The client that creates, loads and drops databases: the job's [restore] connection
        (or --db-* flags) over the source's own settings, which the app's account may lack rights for."""
        admin = self.ctx.job.restore
        if admin is None:
            return self.engine()
        cfg = self.settings()
        changes: dict[str, Any] = {k: getattr(admin, k) for k in ("host", "port", "user")
                                   if getattr(admin, k) is not None}
        if hasattr(cfg, "socket"):
            if admin.socket is not None:
                changes.update(socket=admin.socket, port=None)
            elif admin.port is not None or admin.host is not None:
                changes["socket"] = None
        if admin.user is not None or admin.password_env or admin.password_file:
            # Another account: never the app's password for it.
            changes.update(password=None, password_env=admin.password_env, password_file=admin.password_file)
        try:
            return self.client(msgspec.structs.replace(cfg, **changes))
        except ConfigError as exc:
            raise ConfigError(f"{self.ctx.job.config_path}: restore connection: {exc}") from None

    def denied(self, exc: PermissionDenied, doing: str) -> PermissionDenied:
        """A refusal said as what it is: the account's rights, not the backup."""
        hint = ("give restore an account that may create databases: --db-user/--db-password-env "
                "(or a [restore] table in the job)") if self.ctx.job.restore is None else \
            "check the grants of the [restore] connection (or the --db-* flags)"
        return PermissionDenied(f"{doing}: permission denied by the database server, not a fault of the backup: "
                                f"{exc}; {hint}")

    @abstractmethod
    def find_tools(self) -> None:
        """BackupError when the client programs are not installed."""

    def preflight(self) -> None:
        self.find_tools()
        self.engine()  # a password that cannot be read stops the run here, before any hook

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "host": self.cfg.host,
                "databases": self.cfg.databases or self.cfg.database}

    def backup(self, out: ArtifactOutput) -> None:
        engine = self.engine()
        retry = self.ctx.job.retry
        several = self.cfg.databases is not None
        try:
            if self.cfg.databases == "all":  # listed on the server; a dump connects (and is retried) itself
                with_retry(engine.check, attempts=retry.attempts, delay=retry.delay,
                           what=f"{self.label}: connect", log=self.ctx.log)
            for db in engine.databases():
                stem = f"db-{self.name}-{db}" if several else f"db-{self.name}"
                name = f"{stem}.{self.extension}.zst"

                def one(db: str = db, name: str = name) -> None:
                    with out.artifact(name, self.kind) as stream:
                        stream.meta["tables"] = engine.dump(db, stream.write)
                        stream.meta["database"] = db

                with_retry(one, attempts=retry.attempts, delay=retry.delay,
                           what=f"{self.label}: dump of {db}", log=self.ctx.log)
        except BackupError as exc:
            if exc.step:  # a destination failed while we streamed: its step, not ours
                raise
            raise self.fail(str(exc).removeprefix(f"{self.label}: ")) from None

    def restore_test(self, reader: ArtifactReader) -> bool:
        try:
            return self._restore_test(reader)
        except PermissionDenied as exc:
            raise self.denied(exc, f"{reader.where}: restore test could not run") from None

    def _restore_test(self, reader: ArtifactReader) -> bool:
        engine = self.restore_engine()
        scratch = f"vigil_restoretest_{secrets.token_hex(4)}"
        self.ctx.log.info("restore test of %s into scratch database %s", reader.where, scratch)
        try:
            engine.create_database(scratch, force=False)
            try:
                engine.load(scratch, reader.plain(), scratch=True)
            except (Damaged, PermissionDenied):
                raise
            except BackupError as exc:  # the report names the backup and artifact that did not load
                raise BackupError(f"{reader.where}: restore test failed: {exc}") from None
            got = engine.row_counts(scratch)
        finally:
            try:
                engine.drop_database(scratch)
            except BackupError as exc:
                self.ctx.log.error("could not drop scratch database %s: %s", scratch, exc)
        check_row_counts(reader, got)
        return True

    def restore_to(self, readers: list[ArtifactReader], target: RestoreTarget) -> Restored:
        main = self.main_artifact(readers)
        if target.database is None:
            return super().restore_to(readers, target)
        dumps = sum(r.art.type == self.kind for r in readers)
        if dumps > 1:
            raise ConfigError(f"source {self.name} holds {dumps} databases: restore one at a time with "
                              f"--to-file, or name the artifact's database")
        try:
            return self._restore_database(main, target.database, target.force)
        except PermissionDenied as exc:
            raise self.denied(exc, f"restore into database {target.database}") from None

    def _restore_database(self, reader: ArtifactReader, name: str, force: bool) -> Restored:
        engine = self.restore_engine()
        existed = engine.create_database(name, force)
        counting = _Counting(reader.plain())
        try:
            engine.load(name, counting, clean=existed)
        except BaseException:
            if not existed:
                self.ctx.log.error("restore into %s failed; dropping the half-restored database", name)
                engine.drop_database(name)
            raise
        return Restored(entries=len(reader.art.tables or {}), bytes=counting.bytes)


class _Counting:
    def __init__(self, chunks: Iterator[bytes]) -> None:
        self.chunks = chunks
        self.bytes = 0

    def __iter__(self) -> Iterator[bytes]:
        for chunk in self.chunks:
            self.bytes += len(chunk)
            yield chunk


def feed(argv: list[str], env: dict[str, str], what: str, chunks: Iterable[bytes]) -> None:
    """Write chunks to a child's stdin; its failure wins over a broken pipe.

    The mirror of Child.stream_to: pg_restore and mariadb read 4 KiB at a
    time, and a writer blocked on a full pipe is woken for each read (67,000
    times for the 311 MB of a 2M-row pg_restore check; ~500 now). With a
    1 MiB pipe vigil writes half of it at a time, once that much is free."""
    with Child(argv, env, what, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL) as child:
        stdin = child.proc.stdin
        assert stdin is not None
        write = _roomy_writer(stdin.fileno()) if _widen(stdin) else stdin.write
        try:
            for chunk in chunks:
                write(chunk)
            stdin.close()
        except BrokenPipeError:
            pass
        child.finish()


def _roomy_writer(fd: int) -> Callable[[bytes], None]:
    """Writes to a wide pipe that first wait until half of it is free."""
    closed = _closed(fd)

    def write(data: bytes) -> None:
        view = memoryview(data)
        while view:
            _wait(fd, closed, lambda queued: queued <= PIPE_SIZE // 2)
            view = view[os.write(fd, view[:PIPE_SIZE // 2]):]  # fits; a reader gone: BrokenPipeError

    return write


def tool_env(**extra: str) -> dict[str, str]:
    """A database tool's environment: a child's (no job secrets), without the user's PG*/MYSQL*
    settings, which would override what the job says."""
    env = {k: v for k, v in child_env().items() if not k.startswith(("PG", "MYSQL"))}
    env.update(extra)
    env.setdefault("LC_ALL", "C.UTF-8")
    return env
