"""The run journal: SQLite in STATE_DIR/journal.db (runs, outbox, health state, verify results).

WAL mode and a busy timeout let concurrent vigil processes (parallel runs,
health checks) share it. Every attempt gets a row, including skipped ones, so
that duplicate schedules can be seen after the fact.
"""

from __future__ import annotations

import json
import os
import sqlite3
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

from vigil.errors import BackupError
from vigil.timeutil import iso

SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    run_id      TEXT PRIMARY KEY,
    job         TEXT NOT NULL,
    pid         INTEGER NOT NULL,
    host        TEXT NOT NULL,
    started_at  REAL NOT NULL,
    finished_at REAL,
    outcome     TEXT NOT NULL,
    step        TEXT,
    error       TEXT,
    warnings    TEXT NOT NULL DEFAULT '[]',
    bytes       INTEGER,
    backup_id   TEXT,
    started_by  TEXT,
    started_by_chain TEXT NOT NULL DEFAULT '[]',
    log_path    TEXT
);
CREATE INDEX IF NOT EXISTS runs_job_started ON runs (job, started_at);
CREATE TABLE IF NOT EXISTS outbox (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    job          TEXT NOT NULL,
    run_id       TEXT,
    channel      TEXT NOT NULL,
    event        TEXT NOT NULL,
    payload      TEXT NOT NULL,
    created_at   REAL NOT NULL,
    attempts     INTEGER NOT NULL DEFAULT 0,
    last_error   TEXT,
    claimed_by   TEXT,
    claimed_at   REAL,
    delivered_at REAL,
    dropped      TEXT
);
CREATE TABLE IF NOT EXISTS verifications (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    job         TEXT NOT NULL,
    backup_id   TEXT NOT NULL,
    destination TEXT NOT NULL,
    ok          INTEGER NOT NULL,
    reason      TEXT,
    verified_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS verifications_job ON verifications (job, verified_at);
CREATE TABLE IF NOT EXISTS health_state (
    job         TEXT PRIMARY KEY,
    status      TEXT NOT NULL,
    reasons     TEXT NOT NULL DEFAULT '[]',
    changed_at  REAL NOT NULL,
    notified_at REAL
);
"""



class Outcome(StrEnum):
    """How an attempt of a job stands (SPEC §1, `runs --json`): the journal stores these words."""

    RUNNING = "running"
    SUCCESS = "success"
    FAILED = "failed"
    SKIPPED = "skipped"
    INTERRUPTED = "interrupted"
    DIED = "died"

    @property
    def finished(self) -> bool:
        """An attempt that did its work and ended: neither still running nor skipped at the lock."""
        return self not in (Outcome.RUNNING, Outcome.SKIPPED)

    @property
    def failed(self) -> bool:
        """Ended without a complete backup: failed, interrupted or died."""
        return self in (Outcome.FAILED, Outcome.INTERRUPTED, Outcome.DIED)


# Journals written by older versions are upgraded in place on open: each entry
# brings a journal from version N-1 (its index) to N. Only additive changes.
MIGRATIONS: list[list[str]] = [
    [],  # 0 -> 1: the tables above
    ["ALTER TABLE outbox ADD COLUMN claimed_by TEXT", "ALTER TABLE outbox ADD COLUMN claimed_at REAL",
     "ALTER TABLE outbox ADD COLUMN dropped TEXT"],
    [],  # 2 -> 3: the verifications table (created above, like every table that is missing)
]
VERSION = len(MIGRATIONS)


@dataclass
class RunRow:
    run_id: str
    job: str
    pid: int
    host: str
    started_at: float
    outcome: Outcome = Outcome.RUNNING
    finished_at: float | None = None
    step: str | None = None
    error: str | None = None
    warnings: list[str] = field(default_factory=list)
    bytes: int | None = None
    backup_id: str | None = None
    started_by: str | None = None
    started_by_chain: list[str] = field(default_factory=list)
    log_path: str | None = None

    def __post_init__(self) -> None:
        self.outcome = Outcome(self.outcome)  # a row read back or built from plain words

    def to_json(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "job": self.job,
            "pid": self.pid,
            "host": self.host,
            "started_at": iso(self.started_at),
            "finished_at": iso(self.finished_at),
            "outcome": self.outcome,
            "step": self.step,
            "error": self.error,
            "warnings": self.warnings,
            "bytes": self.bytes,
            "backup_id": self.backup_id,
            "started_by": self.started_by,
            "started_by_chain": self.started_by_chain,
            "log": self.log_path,
        }


@dataclass
class VerifyRow:
    """What one `vigil verify` found about one backup on one destination."""

    job: str
    backup_id: str
    destination: str
    ok: bool
    reason: str | None
    verified_at: float


_COLUMNS = [f for f in RunRow.__dataclass_fields__]


def _row(r: sqlite3.Row) -> RunRow:
    d = dict(r)
    d["warnings"] = json.loads(d["warnings"] or "[]")
    d["started_by_chain"] = json.loads(d["started_by_chain"] or "[]")
    return RunRow(**d)


class Journal:
    def __init__(self, state_dir: Path) -> None:
        self.path = state_dir / "journal.db"
        try:
            state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
            fresh = not self.path.exists()
            self.db = sqlite3.connect(self.path, timeout=30, isolation_level=None)
            if fresh:
                os.chmod(self.path, 0o600)
            self.db.row_factory = sqlite3.Row
            self.db.execute("PRAGMA busy_timeout = 30000")
            self.db.execute("PRAGMA journal_mode = WAL")
            self.db.execute("PRAGMA synchronous = NORMAL")
            self._migrate()
        except (OSError, sqlite3.Error) as exc:
            raise BackupError(f"state dir {state_dir}: cannot open journal {self.path}: {exc}", "lock") from None

    def _migrate(self) -> None:
        self.db.executescript(SCHEMA)  # creates what is missing: a new journal gets the newest schema
        version = self.db.execute("PRAGMA user_version").fetchone()[0]
        if version >= VERSION:
            return
        if version == 0:  # brand new (just created), or written before the schema had versions
            cols = {r[1] for r in self.db.execute("PRAGMA table_info(outbox)")}
            version = VERSION if "claimed_by" in cols else 1
        for step in MIGRATIONS[version:]:
            for statement in step:
                try:
                    self.db.execute(statement)
                except sqlite3.OperationalError as exc:
                    if "duplicate column" not in str(exc):  # another process migrated first
                        raise
        self.db.execute(f"PRAGMA user_version = {VERSION}")

    @classmethod
    def open_existing(cls, state_dir: Path) -> Journal | None:
        """The journal of a state dir for a reader; None where no run has written one yet
        (a reader never creates it: a fresh server restored from scratch has none)."""
        return cls(state_dir) if (state_dir / "journal.db").exists() else None

    def __enter__(self) -> Journal:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.db.close()

    # --- health transitions (`health --notify`) ----------------------------------

    def health_state(self, job: str) -> tuple[str | None, float | None]:
        """The job's last evaluated status and when it was last notified."""
        row = self.db.execute("SELECT status, notified_at FROM health_state WHERE job = ?", (job,)).fetchone()
        return (row[0], row[1]) if row else (None, None)

    def set_health_state(self, job: str, status: str, reasons: list[str], now: float,
                         notified_at: float | None) -> None:
        self.db.execute(
            "INSERT INTO health_state (job, status, reasons, changed_at, notified_at) VALUES (?, ?, ?, ?, ?)"
            " ON CONFLICT(job) DO UPDATE SET status = excluded.status, reasons = excluded.reasons,"
            " changed_at = CASE WHEN health_state.status = excluded.status THEN health_state.changed_at"
            " ELSE excluded.changed_at END, notified_at = excluded.notified_at",
            (job, status, json.dumps(reasons), now, notified_at))

    # --- runs --------------------------------------------------------------------

    def insert_run(self, row: RunRow) -> None:
        values = row.to_json()
        values.update(
            started_at=row.started_at,
            finished_at=row.finished_at,
            warnings=json.dumps(row.warnings),
            started_by_chain=json.dumps(row.started_by_chain),
            log_path=row.log_path,
        )
        values.pop("log")
        cols = ", ".join(_COLUMNS)
        marks = ", ".join(f":{c}" for c in _COLUMNS)
        self.db.execute(f"INSERT INTO runs ({cols}) VALUES ({marks})", values)

    def set_step(self, run_id: str, step: str) -> None:
        self.db.execute("UPDATE runs SET step = ? WHERE run_id = ?", (step, run_id))

    def finish_run(
        self,
        run_id: str,
        outcome: str,
        *,
        step: str | None,
        error: str | None,
        warnings: list[str],
        nbytes: int | None,
        backup_id: str | None,
        finished_at: float | None = None,
    ) -> None:
        self.db.execute(
            "UPDATE runs SET outcome = ?, finished_at = ?, step = ?, error = ?, warnings = ?,"
            " bytes = ?, backup_id = ? WHERE run_id = ?",
            (outcome, finished_at or time.time(), step, error, json.dumps(warnings), nbytes, backup_id, run_id),
        )

    def mark_died(self, job: str, host: str, alive: set[str]) -> list[RunRow]:
        """Turn `running` rows of this job on this host into `died`.

        Called while holding the job's lock: any other run of the job on this
        host that were alive would hold the lock, so every such row is dead
        (pid reuse cannot fool this).
        """
        rows = [
            _row(r)
            for r in self.db.execute(
                "SELECT * FROM runs WHERE job = ? AND host = ? AND outcome = ?", (job, host, Outcome.RUNNING)
            )
            if r["run_id"] not in alive
        ]
        now = time.time()
        for r in rows:
            r.outcome, r.finished_at = Outcome.DIED, now
            r.error = (f"run {r.run_id} (pid {r.pid}) died without finishing (killed, OOM or power loss) "
                       f"during step {r.step or 'start'}")
            self.db.execute(
                "UPDATE runs SET outcome = 'died', finished_at = ?, error = ? WHERE run_id = ? AND outcome = ?",
                (now, r.error, r.run_id, Outcome.RUNNING),
            )
        return rows

    def runs(self, job: str | None = None, since: float | None = None, limit: int | None = None) -> list[RunRow]:
        sql, args = "SELECT * FROM runs WHERE 1=1", list[Any]()
        if job:
            sql += " AND job = ?"
            args.append(job)
        if since is not None:
            sql += " AND (finished_at IS NULL OR finished_at >= ?)"
            args.append(since)
        sql += " ORDER BY started_at DESC, rowid DESC"
        if limit:
            sql += f" LIMIT {int(limit)}"
        return [_row(r) for r in self.db.execute(sql, args)]

    def run(self, run_id: str) -> RunRow | None:
        r = self.db.execute("SELECT * FROM runs WHERE run_id = ?", (run_id,)).fetchone()
        return _row(r) if r else None

    # --- verify results -------------------------------------------------------------

    def record_verification(self, row: VerifyRow) -> None:
        try:
            self.db.execute(
                "INSERT INTO verifications (job, backup_id, destination, ok, reason, verified_at)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                (row.job, row.backup_id, row.destination, int(row.ok), row.reason, row.verified_at))
        except sqlite3.Error as exc:
            raise BackupError(f"journal {self.path}: cannot record a verify result: {exc}") from None

    def verifications(self, job: str, backup_ids: set[str]) -> list[VerifyRow]:
        """The verify results of these backups of the job, newest first."""
        ids = sorted(backup_ids)
        rows = self.db.execute(
            "SELECT job, backup_id, destination, ok, reason, verified_at FROM verifications WHERE job = ?"
            f" AND backup_id IN ({', '.join('?' * len(ids))}) ORDER BY verified_at DESC, id DESC", (job, *ids))
        return [VerifyRow(r[0], r[1], r[2], bool(r[3]), r[4], r[5]) for r in rows]

    def iter_jobs(self) -> Iterator[str]:
        for (job,) in self.db.execute("SELECT DISTINCT job FROM runs"):
            yield job


@dataclass
class OutboxRow:
    id: int
    job: str
    run_id: str | None
    channel: str
    event: str
    payload: dict[str, Any]
    created_at: float
    attempts: int
    last_error: str | None


CLAIM_TIMEOUT = 300  # a claim older than this belonged to a process that died


class Outbox:
    """Notifications written before delivery, marked after: none is lost, none sent twice."""

    def __init__(self, journal: Journal) -> None:
        self.db = journal.db

    def add(self, job: str, run_id: str | None, channel: str, event: str, payload: dict[str, Any]) -> int:
        cur = self.db.execute(
            "INSERT INTO outbox (job, run_id, channel, event, payload, created_at) VALUES (?, ?, ?, ?, ?, ?)",
            (job, run_id, channel, event, json.dumps(payload), time.time()),
        )
        return int(cur.lastrowid or 0)

    def pending(self, job: str | None = None) -> list[OutboxRow]:
        sql = ("SELECT id, job, run_id, channel, event, payload, created_at, attempts, last_error FROM outbox"
               " WHERE delivered_at IS NULL AND dropped IS NULL")
        args: list[Any] = []
        if job:
            sql += " AND job = ?"
            args.append(job)
        rows = self.db.execute(sql + " ORDER BY id", args).fetchall()
        return [OutboxRow(r[0], r[1], r[2], r[3], r[4], json.loads(r[5]), r[6], r[7], r[8]) for r in rows]

    def claim(self, row_id: int) -> bool:
        """Take a message for delivery; False when another process has it."""
        now = time.time()
        cur = self.db.execute(
            "UPDATE outbox SET claimed_by = ?, claimed_at = ? WHERE id = ? AND delivered_at IS NULL"
            " AND dropped IS NULL AND (claimed_at IS NULL OR claimed_at < ?)",
            (f"{os.getpid()}", now, row_id, now - CLAIM_TIMEOUT),
        )
        return cur.rowcount == 1

    def delivered(self, row_id: int) -> None:
        self.db.execute("UPDATE outbox SET delivered_at = ?, attempts = attempts + 1, claimed_at = NULL"
                        " WHERE id = ?", (time.time(), row_id))

    def failed(self, row_id: int, error: str) -> None:
        self.db.execute("UPDATE outbox SET attempts = attempts + 1, last_error = ?, claimed_at = NULL"
                        " WHERE id = ?", (error, row_id))

    def drop(self, row_id: int, reason: str) -> None:
        self.db.execute("UPDATE outbox SET dropped = ?, claimed_at = NULL WHERE id = ?", (reason, row_id))
