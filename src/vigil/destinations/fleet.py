"""A read-only view of a store many hosts back up into (SPEC §13): every job folder under a prefix.

A fleet view has no job files: it finds each job by its folder (`status.json`
or backup folders in it), and reads that job's status object and its newest
manifests only, never the artifacts. Everything read is untrusted: a status
object is a plain JSON object or reported as unreadable, a manifest is checked
as every reader checks it.
"""

from __future__ import annotations

import json
import logging
import os
import stat
import threading
import time
from abc import ABC, abstractmethod
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vigil.config.schema import import_extra
from vigil.destinations.base import STATUS, DamagedBackup, parse_manifest
from vigil.destinations.local import PARTIAL
from vigil.errors import VigilError
from vigil.formats.manifest import MANIFEST, MAX_MANIFEST, Manifest, is_backup_id

MAX_STATUS = 64 << 10  # a status object is a few hundred bytes
MAX_DEPTH = 3  # folders below the prefix searched for jobs: PREFIX/HOST/JOB/ and one more level
MANIFEST_TRIES = 5  # newest backup folders read to find a committed manifest (the newest may be a partial)
WORKERS = 16

log = logging.getLogger("vigil")


class FleetError(VigilError):
    """The fleet's URL is not one, or its root cannot be listed: the whole check is UNKNOWN."""


class Unreadable(Exception):
    """One folder or object of the store could not be read; the message says why."""


@dataclass
class JobFolder:
    """One job found under the prefix, as its folder holds it."""

    path: str  # relative to the fleet's root ("app", or "web1/app" one level down); "" for the root itself
    name: str  # the folder's own name: the job its manifests must name
    status: dict[str, Any] | None = None
    status_error: str | None = None  # status.json there but not a JSON object
    newest: Manifest | None = None  # the newest committed backup whose manifest checks out
    damaged: DamagedBackup | None = None  # a backup newer than `newest` whose manifest does not check out
    backups: int = 0  # backup folders listed (committed or not)
    error: str | None = None  # the folder could not be read
    too_deep: list[str] = field(default_factory=list)  # sub-folders below the search depth, not searched


class Store(ABC):
    """Folders and small objects under one root, as names relative to it."""

    url: str
    requests = 0  # requests sent to the store, for the log

    @abstractmethod
    def listdir(self, rel: str) -> tuple[list[str], list[str]]:
        """(sub-folder names, file names) of a folder; Unreadable if it cannot be listed."""

    @abstractmethod
    def get(self, rel: str, limit: int) -> bytes | None:
        """At most `limit` + 1 bytes of an object, None when there is none; Unreadable on failure."""

    def where(self, rel: str) -> str:
        return self.url + (rel + "/" if rel else "")

    def root_name(self) -> str:
        """The root folder's own name: the job's, when the root is a job folder."""
        return self.url.rstrip("/").rsplit("/", 1)[-1]


class LocalStore(Store):
    def __init__(self, root: Path) -> None:
        self.root = root
        self.url = str(root).rstrip("/") + "/"

    def root_name(self) -> str:
        return self.root.resolve().name  # `vigil fleet .` in a job folder names that job, not "."

    def listdir(self, rel: str) -> tuple[list[str], list[str]]:
        dirs, files = [], []
        try:
            with os.scandir(self.root / rel if rel else self.root) as entries:
                for e in entries:
                    # Never through a symlink: what a folder holds is untrusted.
                    if e.is_dir(follow_symlinks=False):
                        dirs.append(e.name)
                    elif e.is_file(follow_symlinks=False):
                        files.append(e.name)
        except OSError as exc:
            raise Unreadable(f"cannot list {self.where(rel)}: {exc.strerror or exc}") from None
        return dirs, files

    def get(self, rel: str, limit: int) -> bytes | None:
        try:
            # Non-blocking: opening a FIFO planted under a status or manifest name must not hang.
            fd = os.open(self.root / rel, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise Unreadable(f"cannot read {self.url}{rel}: {exc.strerror or exc}") from None
        with os.fdopen(fd, "rb") as fh:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                raise Unreadable(f"cannot read {self.url}{rel}: not a regular file")
            try:
                return fh.read(limit + 1)
            except OSError as exc:
                raise Unreadable(f"cannot read {self.url}{rel}: {exc.strerror or exc}") from None


class S3Store(Store):
    """A bucket prefix, read with boto3's usual credential chain (environment, ~/.aws, instance role)."""

    def __init__(self, bucket: str, prefix: str, endpoint_url: str | None, workers: int) -> None:
        boto3 = import_extra("boto3", "vigil fleet")
        from botocore.config import Config  # boto3's own dependency: it imported

        self.bucket, self.prefix = bucket, prefix
        self.url = f"s3://{bucket}/{prefix}"
        config = Config(retries={"total_max_attempts": 3, "mode": "standard"}, connect_timeout=5, read_timeout=30,
                        max_pool_connections=workers)
        self.client = boto3.client("s3", endpoint_url=endpoint_url, config=config)
        self._lock = threading.Lock()
        self.client.meta.events.register("before-send.s3", self._count)

    def _count(self, **_kwargs: Any) -> None:
        with self._lock:  # sent from every thread of the pool
            self.requests += 1

    def _fail(self, what: str, exc: Exception) -> Unreadable:
        from vigil.destinations.s3 import _reason

        return Unreadable(f"cannot {what}: {_reason(exc)}")

    def listdir(self, rel: str) -> tuple[list[str], list[str]]:
        base = self.prefix + (rel + "/" if rel else "")
        dirs, files = [], []
        try:
            pages = self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=base,
                                                                          Delimiter="/")
            for page in pages:
                dirs += [p["Prefix"][len(base):].rstrip("/") for p in page.get("CommonPrefixes", [])]
                files += [o["Key"][len(base):] for o in page.get("Contents", [])]
        except Exception as exc:  # noqa: BLE001 - no bucket, no access, no endpoint: all one line
            raise self._fail(f"list {self.where(rel)}", exc) from None
        return [d for d in dirs if d], [f for f in files if f]

    def get(self, rel: str, limit: int) -> bytes | None:
        try:
            body = self.client.get_object(Bucket=self.bucket, Key=self.prefix + rel)["Body"]
            with body:
                data: bytes = body.read(limit + 1)
            return data
        except self.client.exceptions.NoSuchKey:
            return None
        except Exception as exc:  # noqa: BLE001 - told as the object's
            raise self._fail(f"read {self.url}{rel}", exc) from None


def open_store(url: str, endpoint_url: str | None = None, workers: int = WORKERS) -> Store:
    """`s3://BUCKET/PREFIX/` or a local directory; FleetError for anything else."""
    if url.startswith("s3://"):
        bucket, _, prefix = url[len("s3://"):].partition("/")
        if not bucket:
            raise FleetError(f"{url}: no bucket (use s3://BUCKET/PREFIX/)")
        prefix = prefix.strip("/")
        return S3Store(bucket, prefix + "/" if prefix else "", endpoint_url, workers)
    if "://" in url:
        raise FleetError(f"{url}: not an s3://BUCKET/PREFIX/ URL or a local directory")
    if endpoint_url:
        raise FleetError(f"--endpoint-url is for s3:// URLs, not the local directory {url}")
    return LocalStore(Path(url))


def _join(rel: str, name: str) -> str:
    return f"{rel}/{name}" if rel else name


def _status(store: Store, job: JobFolder) -> None:
    data = store.get(_join(job.path, STATUS), MAX_STATUS)
    if data is None:
        return
    try:
        if len(data) > MAX_STATUS:
            raise ValueError(f"larger than {MAX_STATUS} bytes")
        value = json.loads(data)
        if not isinstance(value, dict):
            raise ValueError("not a JSON object")
        job.status = value
    except (ValueError, RecursionError) as exc:
        job.status_error = f"{STATUS}: {exc}"


def _newest(store: Store, job: JobFolder, ids: list[str]) -> None:
    """The newest backup with a manifest that checks out; a newer damaged one is noted. The one
    the status object names comes first: of two ids of one second, only it knows which is newer."""
    named = (job.status or {}).get("newest_backup_id")
    order = sorted(ids, reverse=True)  # an id starts with its UTC start time
    if named in ids and order[0][:16] == named[:16]:
        order.remove(named)
        order.insert(0, named)
    for backup_id in order[:MANIFEST_TRIES]:
        data = store.get(_join(job.path, f"{backup_id}/{MANIFEST}"), MAX_MANIFEST)
        if data is None:
            continue  # not committed (yet)
        found = parse_manifest(data, job.name, backup_id)
        # An incremental restores only with every backup of its chain: one not listed breaks it.
        missing = next((c for c in found.chain if c not in ids), None) if isinstance(found, Manifest) else None
        if missing is not None:
            found = DamagedBackup(backup_id, f"chain broken: base {missing} is missing", tuple(found.chain))
        if isinstance(found, DamagedBackup):
            job.damaged = job.damaged or found
            continue
        job.newest = found
        return


def _visit(store: Store, rel: str, depth: int, listing: tuple[list[str], list[str]] | None = None
           ) -> tuple[JobFolder | None, list[str]]:
    """A folder: the job it is, or the folders below it to search (at most `depth` levels)."""
    name = rel.rsplit("/", 1)[-1] or store.root_name()
    job = JobFolder(rel, name)
    try:
        dirs, files = listing if listing is not None else store.listdir(rel)
        ids = [d for d in dirs if is_backup_id(d)]
        # A first run killed mid-upload leaves only its partial folder: a job with no complete backup.
        partial = any(d.startswith(PARTIAL) and is_backup_id(d[len(PARTIAL):]) for d in dirs)
        if STATUS not in files and not ids and not partial:
            below = [d for d in dirs if not d.startswith(".")]
            if depth > 0 or not below:
                return None, [_join(rel, d) for d in below]
            job.too_deep = sorted(below)  # said, never dropped silently: a job may be down there
            return job, []
        job.backups = len(ids)
        _status(store, job)
        _newest(store, job, ids)
    except Unreadable as exc:
        job.error = str(exc)
    return job, []


def read_fleet(store: Store, workers: int = WORKERS) -> list[JobFolder]:
    """Every job under the store's root (the root itself may be one), sorted by path.
    FleetError when the root cannot be listed."""
    started = time.monotonic()
    try:
        root = store.listdir("")
    except Unreadable as exc:
        raise FleetError(str(exc)) from None
    found: list[JobFolder] = []
    job, queue = _visit(store, "", MAX_DEPTH, root)
    if job is not None:
        found.append(job)
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="vigil-fleet") as pool:
        pending: set[Future[tuple[JobFolder | None, list[str]]]] = set()
        while queue or pending:
            # Each folder's depth below the root bounds how much further down jobs are searched.
            pending |= {pool.submit(_visit, store, rel, MAX_DEPTH - 1 - rel.count("/")) for rel in queue}
            done, pending = wait(pending, return_when=FIRST_COMPLETED)
            queue = []
            for fut in done:
                job, more = fut.result()
                if job is not None:
                    found.append(job)
                queue += more
    log.debug("fleet %s: %d job(s) read in %.2fs with %d request(s)", store.url, len(found),
              time.monotonic() - started, store.requests)
    return sorted(found, key=lambda j: j.path)
