"""`vigil restore`: one source of one backup, into a directory, database or file.

The backup's source restores it (`Source.restore_to`); this module picks the
copies to try, in the job's destination order, and moves on to the next
destination's copy when one is damaged or its destination fails while read.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vigil.config.schema import Job
from vigil.destinations.base import Destination, make_destination
from vigil.errors import BackupError, ConfigError, Damaged, VigilError
from vigil.formats.manifest import Manifest
from vigil.formats.tarreader import TarFormatError
from vigil.pipeline.crypto import decryptor
from vigil.pipeline.progress import NO_PROGRESS, Meter
from vigil.pipeline.reading import ArtifactReader, ChecksumError, find_backup, with_chain
from vigil.sources.base import RestoreTarget, SourceContext, source_for

_DAMAGE: tuple[type[BaseException], ...] = (Damaged, ChecksumError, TarFormatError)


@dataclass
class Summary:
    source: str
    backup_id: str
    destination: str
    target: str
    entries: int = 0
    bytes: int = 0
    seconds: float = 0.0
    skipped: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)  # destinations tried first, and why they failed

    def to_json(self) -> dict[str, Any]:
        return self.__dict__.copy()


def restore(job: Job, backup_id: str, source: str, *, to_dir: Path | None, to_database: str | None,
            to_file: Path | None, include: list[str], force: bool, log: logging.Logger,
            meter: Meter = NO_PROGRESS, destination: str | None = None) -> Summary:
    targets = [t for t in (to_dir, to_database, to_file) if t is not None]
    if len(targets) != 1:
        raise ConfigError("give exactly one of --to DIR, --to-database NAME, --to-file FILE")
    job.source_named(source)  # unknown source: a usage error naming it
    copies = _copies(job, backup_id, destination, log)
    if not copies:
        _refuse_damaged(job, backup_id, destination)
        raise ConfigError(f"job {job.name}: no complete backup {backup_id!r} on any destination")
    target = RestoreTarget(to_dir, to_database, to_file, include, force)
    failed: list[str] = []
    for dest, manifest in copies:
        try:
            summary = _restore_copy(job, dest, manifest, source, target, log, meter, str(targets[0]))
        except Exception as exc:  # sorted by _copy_failed; the rest is raised as it was
            if len(copies) == 1 or not _copy_failed(exc):
                raise
            failed.append(f"{dest.name}: {exc}")
            log.warning("destination %s: its copy of backup %s cannot be restored: %s", dest.name,
                        manifest.id, exc)
            continue
        if failed:
            log.warning("restored from destination %s instead", dest.name)
        summary.failed = failed
        return summary
    raise BackupError(f"backup {copies[0][1].id}: no destination holds an intact copy "
                      f"({', '.join(d.name for d, _ in copies)} failed); nothing restored")


def _copy_failed(exc: Exception) -> bool:
    """Whether the next destination's copy may succeed where this one failed: this
    copy is damaged, or its destination failed while read. A problem with the target
    or the key would fail every copy alike."""
    if isinstance(exc, _DAMAGE):
        return True
    return isinstance(exc, BackupError) and (exc.step or "").startswith("destination:")


def _copies(job: Job, backup_id: str, only: str | None, log: logging.Logger) -> list[tuple[Destination, Manifest]]:
    """The backup on each destination that holds it, in the job's order; only `only`'s if given."""
    names = [str(d.name) for d in job.destination]
    if only is not None and only not in names:
        raise ConfigError(f"--destination {only!r}: job {job.name} has no such destination "
                          f"(destinations: {', '.join(names)})")
    dests = [make_destination(d) for d in job.destination if only in (None, d.name)]
    if len(dests) == 1:
        return find_backup(dests, job.name, backup_id)
    found: list[tuple[Destination, Manifest]] = []
    for dest in dests:
        try:
            found.extend(find_backup([dest], job.name, backup_id))
        except VigilError as exc:  # unreachable: the others may still hold the backup
            log.warning("%s; trying the other destinations", exc)
    if backup_id == "latest" and found:
        newest = max(found, key=lambda f: (f[1].started, f[1].id))[1].id
        found = [(d, m) for d, m in found if m.id == newest]
    return found


def _refuse_damaged(job: Job, backup_id: str, only: str | None) -> None:
    """A backup that is there but damaged (its chain broken, its manifest wrong) is a failure
    to say as such, not an unknown id."""
    for cfg in job.destination:
        if only not in (None, cfg.name):
            continue
        try:
            damaged = make_destination(cfg).scan(job.name).damaged
        except VigilError:
            continue
        bad = next((d for d in damaged if d.backup_id == backup_id), None)
        if bad is not None:
            raise BackupError(f"backup {backup_id} on {cfg.name} cannot be restored: {bad.reason}; nothing restored")


def _restore_copy(job: Job, dest: Destination, manifest: Manifest, source: str, target: RestoreTarget,
                  log: logging.Logger, meter: Meter, where: str) -> Summary:
    arts = [a for a in manifest.artifacts if a.source == source]
    if not arts:
        raise ConfigError(f"backup {manifest.id} holds nothing of source {source!r}")
    start = time.monotonic()
    decrypt = decryptor(job)
    # An incremental backup's files come from its chain too; every other artifact is its own.
    chain = with_chain(dest, manifest) if any(a.type == "files" for a in arts) else [manifest]
    readers = [ArtifactReader(dest, m, a, decrypt, meter) for m in chain for a in m.artifacts
               if a.source == source and (m is manifest or a.type in ("files", "index"))]
    ctx = SourceContext(job=job, log=log, tmp_dir=job.state_dir / "tmp")
    done = source_for(source, arts[0].type, ctx).restore_to(readers, target)
    return Summary(source, manifest.id, dest.name, where, entries=done.entries, bytes=done.bytes,
                   seconds=round(time.monotonic() - start, 3), skipped=done.skipped)
