"""The base of an incremental backup (SPEC §11): which backup, and its indexes at hand.

A run backs up its files sources incrementally when the newest backup of the
job qualifies as a base on every destination the run writes to; otherwise it
is a full backup, and the log says why. Nothing here ever fails a run: a base
that cannot be had only costs a full backup.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vigil.config.schema import Job
from vigil.destinations.base import Destination, Scan, newest_id
from vigil.errors import VigilError
from vigil.formats.index import IndexFormatError
from vigil.formats.manifest import Manifest
from vigil.pipeline.reading import ArtifactReader
from vigil.state import index_cache
from vigil.state.journal import Journal
from vigil.timeutil import format_duration, utcnow


@dataclass
class Base:
    """The backup an incremental one builds on, and each files source's index of it (cached)."""

    manifest: Manifest
    indexes: dict[str, Path] = field(default_factory=dict)

    @property
    def chain(self) -> list[str]:
        """The new backup's chain: the base's, then the base."""
        return [*self.manifest.chain, self.manifest.id]


class NoBase(Exception):
    """Why the run is a full backup."""


def files_sources(sources: list[dict[str, Any]]) -> list[tuple[str, str]]:
    """The (name, path) of each files source, as a manifest's `sources` describes them."""
    return sorted((str(s.get("name")), str(s.get("path"))) for s in sources if s.get("type") == "files")


def choose(job: Job, dests: list[Destination], scans: dict[str, Scan | None], described: list[dict[str, Any]],
           *, full: bool, backup_id: str, log: logging.Logger) -> Base | None:
    """The base for the backup `backup_id`, or None for a full one. `scans` is what each of
    `dests` holds (None: it could not be listed), `described` what the new manifest will say
    of the job's sources."""
    wanted = files_sources(described)
    if not wanted:
        return None  # nothing incremental about databases
    try:
        base = _choose(job, dests, scans, wanted, full, backup_id)
    except NoBase as why:
        log.info("full backup: %s", why)
        return None
    except (VigilError, OSError, IndexFormatError) as exc:
        log.warning("full backup: the base could not be read: %s", exc)
        return None
    except Exception as exc:  # noqa: BLE001 - whatever a destination handed back, it costs a full backup, never the run
        log.warning("full backup: the base could not be used: %s: %s", exc.__class__.__name__, exc)
        return None
    log.info("incremental backup on base %s (full %s, %d in the chain)", base.manifest.id, base.chain[0],
             len(base.chain))
    return base


def _choose(job: Job, dests: list[Destination], listed: dict[str, Scan | None], wanted: list[tuple[str, str]],
            full: bool, backup_id: str) -> Base:
    if full:
        raise NoBase("--full given")
    if not job.files.incremental:
        raise NoBase("files.incremental is false")
    scans: dict[str, Scan] = {}
    for dest in dests:
        scan = listed.get(dest.name)
        if scan is None:
            raise NoBase(f"destination {dest.name} could not be listed")
        scans[dest.name] = scan
    newest = newest_id(list(scans.values()))
    if newest is None:
        raise NoBase("no earlier backup")
    for name, scan in scans.items():
        bad = next((d for d in scan.damaged if d.backup_id == newest), None)
        if bad is not None:
            raise NoBase(f"base {newest} is damaged on {name} ({bad.reason})")
        if not any(m.id == newest for m in scan.complete):
            raise NoBase(f"base {newest} missing on {name}")
    if newest[:16] > backup_id[:16]:
        raise NoBase(f"base {newest} is newer than this run ({backup_id}): the clock went back")
    copies = {name: next(m for m in scan.complete if m.id == newest) for name, scan in scans.items()}
    manifest = next(iter(copies.values()))
    if files_sources(manifest.sources) != wanted:
        raise NoBase(f"the files sources changed since base {newest}")
    first = manifest.chain[0] if manifest.chain else manifest.id
    full_at = next(m.started for m in next(iter(scans.values())).complete if m.id == first)
    if utcnow() - full_at >= job.files.full_every:
        raise NoBase(f"its full backup {first} is older than files.full_every "
                     f"({format_duration(job.files.full_every.total_seconds())})")
    _check_verified(job, {*manifest.chain, newest}, set(scans))
    base = Base(manifest)
    for source, _ in wanted:
        base.indexes[source] = _index(job, dests, copies, source)
    return base


def _check_verified(job: Job, ids: set[str], dests: set[str]) -> None:
    """A backup of the chain that the last verify of it found damaged is no base."""
    journal = Journal.open_existing(job.state_dir)
    if journal is None:
        return
    with journal:
        seen: set[tuple[str, str]] = set()
        for row in journal.verifications(job.name, ids):  # newest first: the last word counts
            key = (row.backup_id, row.destination)
            if key in seen or row.destination not in dests:
                continue
            seen.add(key)
            if not row.ok:
                raise NoBase(f"verify found {row.backup_id} damaged on {row.destination} ({row.reason})")


def _index(job: Job, dests: list[Destination], copies: dict[str, Manifest], source: str) -> Path:
    """The base's index of `source`: the local cache when the manifest vouches for it, else
    fetched from a destination that stores it unencrypted."""
    manifest = next(iter(copies.values()))
    content = {a.extra.get("content_sha256") for m in copies.values() for a in m.artifacts
               if a.type == "index" and a.source == source}
    sha = next(iter(content)) if len(content) == 1 else None
    if not isinstance(sha, str):
        raise NoBase(f"base {manifest.id} records no index of source {source} to compare with")
    path = index_cache.lookup(job.state_dir, job.name, manifest.id, source, sha)
    if path is not None:
        return path
    for dest in dests:
        art = next((a for a in copies[dest.name].artifacts
                    if a.type == "index" and a.source == source and not a.encrypted), None)
        if art is not None:
            return _fetch(job, ArtifactReader(dest, copies[dest.name], art), source, sha)
    raise NoBase(f"no cached index of base {manifest.id}, and its copies are encrypted")


def _fetch(job: Job, reader: ArtifactReader, source: str, sha: str) -> Path:
    """Download an index into the cache; checked against the manifest twice over (stored
    bytes, then content)."""
    path = index_cache.store_path(job.state_dir, job.name, reader.manifest.id, source)
    tmp = path.with_name(path.name + ".tmp")
    out = index_cache.CacheWriter(tmp)  # replaces what a killed run left
    try:
        for chunk in reader.plain():
            out.write(chunk)
        got = out.close()
    except BaseException:
        out.abort()
        raise
    if out.error:
        raise NoBase(f"the base's index cannot be kept locally: {out.error}")
    if got != sha:
        tmp.unlink()
        raise NoBase(f"{reader.where}: its content is not the index the manifest records")
    os.replace(tmp, path)
    return path
