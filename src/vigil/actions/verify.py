"""`vigil verify`: is a stored backup intact, readable, and does it restore?

Default: manifest present, every artifact present with its size and SHA-256.
--deep: each artifact's source reads it to its end and checks what it holds
(a tar against its index, a SQLite copy, a dump's footer or structure).
--restore-test: each database dump is loaded into a scratch database and its
row counts compared with those recorded at backup time.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field

from vigil.config.load import select_jobs
from vigil.config.schema import Job
from vigil.destinations.base import Destination, make_destination, newest_id
from vigil.errors import BackupError, ConfigError, PermissionDenied, VigilError
from vigil.formats.manifest import Artifact, Manifest, is_backup_id
from vigil.pipeline.crypto import decryptor
from vigil.pipeline.progress import NO_PROGRESS, Meter
from vigil.pipeline.reading import ArtifactReader, with_chain
from vigil.sources.base import Source, SourceContext, source_for
from vigil.state.journal import Journal, VerifyRow


@dataclass
class Report:
    checked: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    # (destination, backup id, its problems) for each copy checked: what the journal records
    copies: list[tuple[str, str, list[str]]] = field(default_factory=list)
    # Checks that could not run (a server refused the account): the verify fails, the backup is not damaged
    failed: list[str] = field(default_factory=list)


class Verifier:
    def __init__(self, job: Job, log: logging.Logger, meter: Meter = NO_PROGRESS) -> None:
        self.job = job
        self.log = log
        self.meter = meter
        self.ctx = SourceContext(job=job, log=log, tmp_dir=job.state_dir / "tmp")
        self._sources: dict[tuple[str, str], Source] = {}

    def _locate(self, backup_id: str) -> tuple[list[tuple[Destination, Manifest, list[Manifest]]], list[str]]:
        """The backup on every destination that has it (`latest`: the newest stored, damaged
        or not), with what that destination holds; and a line for each copy whose manifest
        does not check out."""
        scans = [(dest, dest.scan(self.job.name)) for dest in map(make_destination, self.job.destination)]
        if backup_id == "latest":
            backup_id = newest_id([s for _, s in scans]) or ""
        found = [(dest, m, s.complete) for dest, s in scans for m in s.complete if m.id == backup_id]
        damaged = [f"{dest.name}:{self.job.name}/{d.backup_id}: damaged backup: {d.reason}"
                   for dest, s in scans for d in s.damaged if d.backup_id == backup_id]
        return found, damaged

    def verify(self, backup_id: str, deep: bool, restore_test: bool) -> Report:
        found, damaged = self._locate(backup_id)
        if not found and not damaged:
            if backup_id != "latest":
                raise ConfigError(f"job {self.job.name}: no complete backup {backup_id!r} on any destination")
            return Report(problems=[f"job {self.job.name}: no complete backup on any destination"])
        report = Report(problems=damaged)
        if not found:
            return report
        decrypt = decryptor(self.job)
        for dest, manifest, listed in found:
            report.copies.append((dest.name, manifest.id, []))
            try:
                chain = with_chain(dest, manifest, listed)
            except BackupError as exc:
                report.problems.append(str(exc))
                report.copies[-1][2].append(str(exc))
                continue
            readers = [ArtifactReader(dest, m, a, decrypt, self.meter) for m in chain for a in m.artifacts]
            for reader in readers:
                own = reader.manifest is manifest
                try:
                    if deep and own:
                        related = [r for r in readers if r.art.source == reader.art.source]
                        self._source(reader.art).verify_deep(reader, related)
                    elif deep and reader.art.type == "files":
                        continue  # read through by the deep check of the backup's own archive
                    else:
                        reader.check()
                    report.checked.append(reader.where)
                except BackupError as exc:
                    problem = str(exc) if own else f"{exc} (base of {manifest.id})"
                    report.problems.append(problem)
                    report.copies[-1][2].append(problem)
        if restore_test:
            dest, manifest, _ = found[0]
            for art in manifest.artifacts:
                try:
                    if self._source(art).restore_test(ArtifactReader(dest, manifest, art, decrypt, self.meter)):
                        report.checked.append(f"{dest.name}:{manifest.id}/{art.name} (restore test)")
                except PermissionDenied as exc:
                    report.failed.append(str(exc))
                except BackupError as exc:
                    report.problems.append(str(exc))
                    report.copies[0][2].append(str(exc))
        return report

    def _source(self, art: Artifact) -> Source:
        """The source that reads `art` back, one per source and artifact kind."""
        key = (art.source, art.type)
        if key not in self._sources:
            self._sources[key] = source_for(art.source, art.type, self.ctx)
        return self._sources[key]


def targets(jobs: list[Job], job: str | None, backup_id: str) -> tuple[list[Job], str]:
    """The jobs and the backup `vigil verify [JOB] [BACKUP_ID]` means: a lone argument
    that names no job is the backup (`latest`, or an id when one job is configured)."""
    if job is not None and backup_id == "latest" and job not in {j.name for j in jobs} and (
            job == "latest" or (is_backup_id(job) and len(jobs) == 1)):
        return select_jobs(jobs, None), job
    return select_jobs(jobs, [job] if job else None), backup_id


def backup_ids(job: Job, backup_id: str, every: bool) -> list[str]:
    """The backups to check: the one asked for, or with `every` each one stored, damaged too, newest first."""
    if not every:
        return [backup_id]
    scans = [make_destination(d).scan(job.name) for d in job.destination]
    return sorted({m.id for s in scans for m in s.complete} | {d.backup_id for s in scans for d in s.damaged},
                  reverse=True)


def verify_and_record(job: Job, backup_id: str, deep: bool, restore_test: bool, log: logging.Logger,
                      meter: Meter = NO_PROGRESS) -> Report:
    """Verify one backup and keep what was found about each copy in the journal."""
    report = Verifier(job, log, meter).verify(backup_id, deep, restore_test)
    record(job, report.copies, log)
    return report


def record(job: Job, copies: list[tuple[str, str, list[str]]], log: logging.Logger) -> None:
    """Keep what verify found about each copy: health is CRITICAL while the newest is damaged."""
    if not copies:
        return
    now = time.time()
    try:
        with Journal(job.state_dir) as journal:
            for destination, backup_id, problems in copies:
                reason = None
                if problems:
                    reason = problems[0] + (f" (+{len(problems) - 1} more)" if len(problems) > 1 else "")
                journal.record_verification(VerifyRow(job.name, backup_id, destination, not problems, reason, now))
    except VigilError as exc:  # what verify found is printed either way
        log.warning("%s: cannot record the verify result: %s", job.name, exc)
