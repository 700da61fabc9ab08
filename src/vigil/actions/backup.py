"""One backup run of one job: the single place that decides its outcome (SPEC §3).

lock → journal → died-check → preflight → hook:before → source:NAME… →
verify → commit → retention → hook:after → journal, metrics, notify.
Every way out (success, BackupError, any exception, a signal) passes through
`Run.execute`'s one `finally`, which records the outcome and notifies.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import socket
import time
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any, Protocol

from vigil import __version__
from vigil.actions.hooks import run_hooks
from vigil.actions.incremental import Base, choose
from vigil.actions.monitor import write_textfile, zone_name
from vigil.actions.prune import dead_runs, prune_job
from vigil.children import protect_secrets
from vigil.config.schema import Job, LocalDestination
from vigil.destinations.base import BackupWriter, Destination, Scan, make_destination, space_needed
from vigil.errors import BackupError, ConfigError, Interrupted, VigilError
from vigil.formats.manifest import Manifest, ManifestError, new_backup_id
from vigil.pipeline import crypto
from vigil.pipeline.backupset import BackupSet
from vigil.pipeline.progress import NO_PROGRESS, Meter
from vigil.sources.base import Source, SourceContext, make_source
from vigil.state import index_cache
from vigil.state.journal import Journal, Outcome, RunRow
from vigil.state.lock import JobLock, LockHeld, S3Lease, is_alive
from vigil.timeutil import iso, utcnow

SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)
LOG_TAIL = 50

class Notifier(Protocol):
    """The notification layer, as a run sees it."""

    def run_started(self, job: Job, run_id: str) -> None: ...

    def run_finished(self, job: Job, row: RunRow, extra: dict[str, Any]) -> None:
        """Once per finished, skipped or died run, with its journal row."""


@dataclass
class RunResult:
    job: str
    outcome: Outcome
    run_id: str
    step: str | None = None
    error: str | None = None
    backup_id: str | None = None
    warnings: list[str] = field(default_factory=list)
    committed_on: list[str] = field(default_factory=list)


def parent_chain(pid: int | None = None, depth: int = 4) -> list[str]:
    """Command lines of our ancestors: who started this run (cron, systemd, a shell)."""
    chain: list[str] = []
    pid = os.getppid() if pid is None else pid
    while pid > 0 and len(chain) < depth:
        try:
            raw = Path(f"/proc/{pid}/cmdline").read_bytes()
            status = Path(f"/proc/{pid}/status").read_text()
        except OSError:
            break
        chain.append(raw.rstrip(b"\0").replace(b"\0", b" ").decode(errors="replace") or f"[pid {pid}]")
        ppid = [line.split()[1] for line in status.splitlines() if line.startswith("PPid:")]
        pid = int(ppid[0]) if ppid else 0
    return chain


class Run:
    def __init__(self, job: Job, *, log: logging.Logger, notifier: Notifier | None = None,
                 clock: Callable[[], float] = time.time, meter: Meter = NO_PROGRESS, full: bool = False) -> None:
        self.job = job
        self.full = full  # `run --full`: no base, whatever the newest backup is
        self._base: Base | None = None
        self.log = log
        self.notifier = notifier
        self.meter = meter
        self.clock = clock
        self.host = socket.gethostname()
        self.pid = os.getpid()
        started = utcnow()
        self.run_id = new_backup_id(started)
        self.started_at = started.timestamp()
        self.step = "lock"
        self.warnings: list[str] = []
        self.committed_on: list[str] = []
        self.journal: Journal | None = None
        self._finishing = False
        self._signal: str | None = None
        self._log_handler: logging.Handler | None = None
        self._started_by: dict[str, Any] | None = None
        self._backup_set: BackupSet | None = None
        self._hooks_started = False
        self._lease_held: S3Lease | None = None
        self.size: int | None = None
        self.log_path = job.state_dir / "logs" / job.name / f"{self.run_id}.log"
        self._on_failure_ran = False
        protect_secrets(job)

    # --- signals ---------------------------------------------------------------

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        name = signal.Signals(signum).name
        if self._signal is None:
            self._signal = name
            self.log.warning("received %s during step %s: stopping", name, self.step)
        if not self._finishing:
            raise Interrupted(name)

    @contextmanager
    def _signals(self) -> Iterator[None]:
        old = {s: signal.signal(s, self._on_signal) for s in SIGNALS}
        try:
            yield
        finally:
            for s, handler in old.items():
                signal.signal(s, handler)

    # --- steps -----------------------------------------------------------------

    def _enter(self, step: str) -> None:
        self.step = step
        self.log.debug("step %s", step)
        if self.journal:
            self.journal.set_step(self.run_id, step)

    def execute(self) -> RunResult:
        lock = JobLock(self.job.state_dir, self.job.name)
        with self._signals():
            try:
                lock.acquire({"pid": self.pid, "run_id": self.run_id, "host": self.host,
                              "started_at": iso(self.started_at)})
            except LockHeld as held:
                return self._skipped(held)
            except OSError as exc:
                return self._environment_failure(f"cannot take lock {lock.path}: {exc.strerror}")
            except Interrupted as exc:
                return RunResult(self.job.name, Outcome.INTERRUPTED, self.run_id, "lock",
                                 f"interrupted by {exc.signame}")
            try:
                lease = self._lease()
            except LockHeld as held:
                lock.release()
                return self._skipped(held)
            except BackupError as exc:
                lock.release()
                return self._environment_failure(str(exc))
            try:
                return self._locked()
            finally:
                if lease is not None:
                    lease.release()
                lock.release()

    def _lease(self) -> S3Lease | None:
        """With [lock] backend = "s3", the lease shared by every host that runs this job."""
        if self.job.lock.backend != "s3":
            return None
        cfg = next(d for d in self.job.destination if d.name == self.job.lock.destination)
        try:
            lease = S3Lease(make_destination(cfg, self.job.retry), self.job.name)
            lease.acquire({"pid": self.pid, "run_id": self.run_id, "host": self.host,
                           "started_at": iso(self.started_at)})
            self._lease_held = lease
        except (LockHeld, BackupError):
            raise
        except Exception as exc:  # noqa: BLE001 - the store is unreachable or refuses
            raise BackupError(f"lock: cannot take the s3 lease on destination {cfg.name}: {exc}", "lock") from None
        return lease

    def _environment_failure(self, message: str) -> RunResult:
        """The state dir is unusable: no journal, but still one line and a notification."""
        self.log.error("%s", message)
        self._on_failure_hooks()
        row = RunRow(self.run_id, self.job.name, self.pid, self.host, self.started_at, outcome=Outcome.FAILED,
                     finished_at=self.clock(), step=self.step, error=message, **self._starter())
        self._notify(row, {})
        return RunResult(self.job.name, Outcome.FAILED, self.run_id, self.step, message)

    def _skipped(self, held: LockHeld) -> RunResult:
        message = f"job {self.job.name} is already running: lock {held}"
        self.log.warning("%s; skipping", message)
        row = RunRow(self.run_id, self.job.name, self.pid, self.host, self.started_at, outcome=Outcome.SKIPPED,
                     finished_at=self.clock(), step="lock", error=message, **self._starter())
        try:
            with Journal(self.job.state_dir) as journal:
                journal.insert_run(row)
        except BackupError as exc:
            self.log.error("%s", exc)
        self._notify(row, {"holder": held.holder})
        return RunResult(self.job.name, Outcome.SKIPPED, self.run_id, "lock", message)

    def _starter(self) -> dict[str, Any]:
        # Read once, at the start: every row and notification of the run names the same starter.
        if self._started_by is None:
            chain = parent_chain()
            self._started_by = {"started_by": chain[0] if chain else None, "started_by_chain": chain}
        return self._started_by

    def _open_run_log(self) -> None:
        try:
            self.log_path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            # A message that still holds undecodable bytes is written escaped, never dropped.
            handler = logging.FileHandler(self.log_path, encoding="utf-8", errors="backslashreplace")
        except OSError as exc:
            self.log.warning("cannot write run log %s: %s", self.log_path, exc.strerror)
            return
        handler.setLevel(logging.DEBUG)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
        self.log.addHandler(handler)
        self._log_handler = handler

    def _close_run_log(self) -> None:
        if self._log_handler:
            self.log.removeHandler(self._log_handler)
            self._log_handler.close()

    def log_tail(self, lines: int = LOG_TAIL) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def _live_holder(self, journal: Journal) -> dict[str, Any] | None:
        """A run of this job on this host that is still alive although we got the lock:
        its lock file was deleted or replaced under it. Then it still holds the job."""
        for r in journal.runs(self.job.name, since=time.time()):
            if (r.outcome == Outcome.RUNNING and r.host == self.host and r.pid != self.pid
                    and is_alive(r.pid, r.started_at)):
                return {"pid": r.pid, "run_id": r.run_id, "host": r.host, "started_at": iso(r.started_at)}
        return None

    def _locked(self) -> RunResult:
        try:
            journal = Journal(self.job.state_dir)
            holder = self._live_holder(journal)
            if holder is not None:
                journal.close()
                return self._skipped(LockHeld(holder))
            self.journal = journal
            row = RunRow(self.run_id, self.job.name, self.pid, self.host, self.started_at, step="lock",
                         log_path=str(self.log_path), **self._starter())
            self.journal.insert_run(row)
        except BackupError as exc:
            return self._environment_failure(str(exc))
        except Interrupted as exc:
            return RunResult(self.job.name, Outcome.INTERRUPTED, self.run_id, "lock", f"interrupted by {exc.signame}")
        outcome, error = Outcome.FAILED, None
        try:
            self._open_run_log()
            self.log.info("run %s of job %s started (pid %d)", self.run_id, self.job.name, self.pid)
            if self.notifier:
                self.notifier.run_started(self.job, self.run_id)
            for dead in self.journal.mark_died(self.job.name, self.host, {self.run_id}):
                self.log.error("%s", dead.error)
                self._notify(dead, {})
            self._work()
            outcome = Outcome.SUCCESS
        except Interrupted as exc:
            outcome, error = Outcome.INTERRUPTED, f"interrupted by {exc.signame} during step {self.step}"
        except BackupError as exc:
            if exc.step:
                self.step = exc.step
            error = str(exc)
        except ConfigError as exc:  # a key or password that cannot be read: no bug, the step says where
            error = str(exc)
        except Exception as exc:  # noqa: BLE001 - an unanticipated bug must still end loudly
            error = f"unexpected error: {exc.__class__.__name__}: {exc}"
            self.log.debug("%s", traceback.format_exc())
        finally:
            self._finishing = True
            if outcome != Outcome.SUCCESS and self._backup_set is not None:
                self._backup_set.abort()  # committed copies are renamed away: only partials go
            if not self.committed_on:
                index_cache.discard(self.job.state_dir, self.job.name, self.run_id)
        if outcome != Outcome.SUCCESS:
            self.log.error("run %s failed at step %s: %s", self.run_id, self.step, error)
            self._on_failure_hooks()
            if self.committed_on:
                error = f"{error} (the backup {self.run_id} was committed on {', '.join(self.committed_on)})"
        return self._finish(outcome, error)

    def _work(self) -> None:
        job = self.job
        self._enter("preflight")
        # One temporary directory per job: the state dir may be shared, and a
        # job cleans only what its own earlier runs left.
        tmp_dir = job.state_dir / "tmp" / job.name
        self._remove_leftovers(tmp_dir)
        encryptor = crypto.encryptor(job) if job.encryption is not None else None
        ctx = SourceContext(job=job, log=self.log, tmp_dir=tmp_dir, backup_id=self.run_id)
        sources = [make_source(s, ctx) for s in job.source]
        for source in sources:
            source.preflight()
        # A destination that cannot be used is left out and reported; the
        # backup still goes to the others (the run is failed all the same).
        destinations: list[Destination] = []
        unusable: dict[str, BackupError] = {}
        # What each destination holds, listed once: for the room the next backup needs, and for its base.
        scans: dict[str, Scan | None] = {}
        for cfg in job.destination:
            try:
                dest = make_destination(cfg, job.retry)
                scans[dest.name] = scan = self._scan(dest)
                dest.check(job.name, space_needed(scan.complete[0].size if scan and scan.complete else None))
                destinations.append(dest)
            except BackupError as exc:
                self.log.error("%s", exc)
                unusable[cfg.name] = exc
        if not destinations:
            raise next(iter(unusable.values()))
        self._base = choose(job, destinations, scans, [s.describe() for s in sources], full=self.full,
                            backup_id=self.run_id, log=self.log)
        if self._base is not None:
            ctx.base_indexes, ctx.base_chain = self._base.indexes, frozenset(self._base.chain)

        try:
            self._enter("hook:before")
            self._hooks_started = bool(job.hooks.before)
            run_hooks("before", job.hooks.before, job.hooks.timeout, self.log, self._hook_env(), self._hook_cwd())
            self._back_up(sources, destinations, ctx, {n: str(e) for n, e in unusable.items()}, encryptor)
            self._enter("retention")
            # Only here: after a backup committed everywhere. A failed run never prunes.
            prune_job(job, dry_run=False, log=self.log, only=self.committed_on,
                      dead=dead_runs(self.journal.runs(job.name)) if self.journal else set())
        except BaseException:
            self._after_hooks(failed=True)
            raise
        self._after_hooks(failed=False)

    def _on_failure_hooks(self) -> None:
        """`on_failure` hooks, once, for a run that failed or was interrupted at any step."""
        hooks = self.job.hooks
        if self._on_failure_ran or not hooks.on_failure:
            return
        self._on_failure_ran = True
        try:
            run_hooks("on_failure", hooks.on_failure, hooks.timeout, self.log, self._hook_env(), self._hook_cwd())
        except BackupError as exc:  # the run has failed already; its step and error stay
            self.log.error("%s", exc)

    def _remove_leftovers(self, tmp_dir: Path) -> None:
        """Temporary files of an earlier run of this job that was killed (a pgpass file
        holds a password). We hold the job's lock, so no live run owns them."""
        try:
            entries = list(os.scandir(tmp_dir))
        except FileNotFoundError:
            return
        except OSError as exc:
            self.log.warning("cannot list %s: %s", tmp_dir, exc.strerror)
            return
        for entry in entries:
            try:
                old = entry.stat(follow_symlinks=False).st_mtime < self.started_at
                if old and entry.is_file(follow_symlinks=False):
                    os.unlink(entry.path)
                    self.log.info("removed %s, left by an earlier run that did not finish", entry.path)
            except OSError as exc:
                self.log.warning("cannot remove %s: %s", entry.path, exc.strerror)

    def _after_hooks(self, failed: bool) -> None:
        job = self.job
        if failed:
            self._on_failure_hooks()
        if self._hooks_started and job.hooks.after:
            step = self.step
            self._enter("hook:after")
            try:
                run_hooks("after", job.hooks.after, job.hooks.timeout, self.log, self._hook_env(), self._hook_cwd())
            except BackupError:
                if not failed:
                    raise
                self.log.error("after hook failed too (run already failed at %s)", step)
            if failed:
                self.step = step

    def _hook_env(self) -> dict[str, str]:
        return {"VIGIL_JOB": self.job.name, "VIGIL_RUN_ID": self.run_id, "VIGIL_STEP": self.step}

    def _hook_cwd(self) -> Path | None:
        """hooks.cwd, else the job file's directory: `php artisan` works from cron too."""
        if self.job.hooks.cwd is not None:
            return self.job.hooks.cwd
        return self.job.config_path.resolve().parent if self.job.config_path else None

    def _scan(self, dest: Destination) -> Scan | None:
        """What `dest` holds of the job; None when it cannot be listed now (`check` says why)."""
        try:
            return dest.scan(self.job.name)
        except BackupError:
            return None

    def _back_up(self, sources: list[Source], destinations: list[Destination], ctx: SourceContext,
                 unusable: dict[str, str], encryptor: Callable[[Any], Any] | None) -> None:
        writers: dict[str, BackupWriter] = {}
        encrypted = {d.name for d in self.job.destination if encryptor is not None and d.encrypt}
        self._backup_set = backup_set = BackupSet(writers, self.log, encrypted, encryptor, self.meter)
        backup_set.failed.update(unusable)
        for dest in destinations:
            self._enter(f"destination:{dest.name}")
            writers[dest.name] = dest.begin(self.job.name, self.run_id)
        ctx.skip_dirs.update(_dir_ids([d.path for d in self.job.destination if isinstance(d, LocalDestination)]
                                      + [self.job.state_dir]))
        for source in sources:
            self._enter(f"source:{source.name}")
            backup_set.source = source.name
            try:
                source.backup(backup_set)
            except BackupError as exc:
                if exc.step is None:
                    exc.step = f"source:{source.name}"
                raise
            except OSError as exc:
                raise source.fail(str(exc)) from None
            self.warnings.extend(source.warnings)

        self._enter("verify")
        backup_set.verify()

        self._enter("commit")
        finished = self.clock()
        base = self._base
        manifests = {enc: Manifest(
            id=self.run_id, job=self.job.name, host=self.host, vigil_version=__version__,
            started_at=iso(self.started_at), finished_at=iso(finished), artifacts=arts,
            warnings=self.warnings, sources=[s.describe() for s in sources],
            kind="incremental" if base else "full", base=base.manifest.id if base else None,
            chain=base.chain if base else [],
        ) for enc, arts in backup_set.artifacts.items()}
        for m in manifests.values():
            try:  # what every reader will check, checked before it commits anything
                Manifest.loads(m.dumps(), expect_id=m.id, expect_job=m.job)
            except ManifestError as exc:
                raise BackupError(f"the manifest of backup {m.id} would not check out: {exc}", "commit") from None
        backup_set.commit(manifests, self._committed)
        if self.committed_on:
            try:  # the next run's base: this backup's indexes, kept locally
                index_cache.commit(self.job.state_dir, self.job.name, self.run_id)
            except OSError as exc:
                self.log.warning("cannot keep the index cache in %s: %s; the next backup may be full",
                                 self.job.state_dir, exc.strerror)
        if backup_set.failed:
            first = next(iter(backup_set.failed))
            raise BackupError(backup_set.failed[first], f"destination:{first}")
        self.log.info("backup %s committed on %s (%d bytes)", self.run_id, ", ".join(self.committed_on), self.size)

    def _committed(self, dest: str, manifest: Manifest) -> None:
        self.committed_on.append(dest)
        self.size = manifest.size

    def _finish(self, outcome: Outcome, error: str | None) -> RunResult:
        if self._lease_held is not None and self._lease_held.lost:
            self.warnings.append(self._lease_held.lost)  # another host may have run at the same time
        step = None if outcome == Outcome.SUCCESS else self.step
        row = RunRow(self.run_id, self.job.name, self.pid, self.host, self.started_at, outcome=outcome,
                     finished_at=self.clock(), step=step, error=error, warnings=self.warnings, bytes=self.size,
                     backup_id=self.run_id if self.committed_on else None, log_path=str(self.log_path),
                     **self._starter())
        assert self.journal is not None
        try:
            self.journal.finish_run(self.run_id, outcome, step=step, error=error, warnings=self.warnings,
                                    nbytes=self.size, backup_id=row.backup_id, finished_at=row.finished_at)
        except Exception as exc:  # noqa: BLE001 - the journal failing must not hide the outcome
            self.log.error("cannot record the outcome in the journal: %s", exc)
        self.log.info("run %s finished: %s", self.run_id, outcome)
        self._write_status(row)
        write_textfile(self.job, self.log)
        self._notify(row, {"log_tail": self.log_tail(), "committed_on": self.committed_on})
        self._close_run_log()
        self.journal.close()
        return RunResult(self.job.name, outcome, self.run_id, step, error, row.backup_id, self.warnings,
                         self.committed_on)

    def _write_status(self, row: RunRow) -> None:
        """`JOB/status.json` on every destination (SPEC §13): what a fleet view reads without the
        job file. Nothing secret goes in; a destination that refuses it costs a warning, not the run."""
        job = self.job
        base = {"host": self.host, "job": job.name, "run_id": self.run_id, "outcome": str(row.outcome),
                "step": row.step, "error": row.error, "started_at": iso(row.started_at),
                "finished_at": iso(row.finished_at), "schedule": job.schedule.cron,
                "grace_seconds": job.health.grace.total_seconds(),
                "max_age_seconds": job.health.max_age.total_seconds() if job.health.max_age else None,
                "max_runtime_seconds": job.health.max_runtime.total_seconds(),
                # The schedule fires in the host's zone: a fleet view elsewhere reads it there too.
                "timezone": zone_name(), "utc_offset_seconds": _utc_offset()}
        # A destination that failed in this run is not asked again: its status goes stale, and a
        # fleet view says so.
        failed = set(self._backup_set.failed) if self._backup_set is not None else set()
        for cfg in job.destination:
            if cfg.name in failed:
                continue
            try:
                dest = make_destination(cfg, job.retry)
                if cfg.name in self.committed_on:
                    newest: tuple[str | None, int | None] = (self.run_id, self.size)
                else:
                    listed = dest.list(job.name)[:1]
                    newest = (listed[0].id, listed[0].size) if listed else (None, None)
                status = {**base, "newest_backup_id": newest[0], "newest_backup_bytes": newest[1]}
                dest.put_status(job.name, (json.dumps(status, indent=2) + "\n").encode())
            except VigilError as exc:
                self.log.warning("destination %s: status.json not written: %s", cfg.name, exc)

    def _notify(self, row: RunRow, extra: dict[str, Any]) -> None:
        if self.notifier is None:
            return
        try:
            self.notifier.run_finished(self.job, row, extra)
        except Exception as exc:  # noqa: BLE001 - a broken channel never changes the outcome
            self.log.error("notification failed: %s", exc)


def _utc_offset() -> int:
    offset = time.localtime().tm_gmtoff
    return int(offset) if offset is not None else 0


def _dir_ids(paths: list[Path]) -> set[tuple[int, int]]:
    ids = set()
    for p in paths:
        try:
            st = os.stat(p)
        except OSError:
            continue
        ids.add((st.st_dev, st.st_ino))
    return ids
