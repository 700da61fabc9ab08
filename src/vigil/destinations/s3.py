"""S3-compatible object storage (AWS S3, MinIO, Ceph RGW, …) through boto3.

Objects live under `{prefix}{job}/{id}/` with the names of SPEC §4. Each
artifact is a streaming multipart upload fed while the source is read
(memory: one part buffer per open artifact); the manifest is uploaded last
and commits the backup. An aborted run aborts its multipart uploads and
deletes what it uploaded; uploads left by a killed process are found by
`partials()` (ListMultipartUploads) and cleaned by prune.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from datetime import UTC
from typing import Any

from vigil.config.schema import Retry, import_extra
from vigil.config.secrets import env_missing, env_value
from vigil.destinations.base import (
    STATUS,
    BackupWriter,
    DamagedBackup,
    Destination,
    Partial,
    Scan,
    artifact_name,
    newest_first,
    parse_manifest,
    plain_path,
)
from vigil.errors import BackupError, TransientError
from vigil.formats.manifest import MANIFEST, MAX_MANIFEST, Manifest, is_backup_id
from vigil.retry import is_transient, with_retry

PART = 8 << 20  # S3's minimum part is 5 MiB; the size grows every 1000 parts (10,000 parts at most)
READ = 1 << 20


def _client(cfg: Any) -> Any:
    boto3 = import_extra("boto3", f"destination {cfg.name}")
    from botocore.config import Config  # boto3's own dependency: it imported

    keys: dict[str, str] = {}
    for key, env in (("aws_access_key_id", cfg.access_key_id_env),
                     ("aws_secret_access_key", cfg.secret_access_key_env)):
        if env:
            value = env_value(env)
            if value is None:
                raise BackupError(f"destination {cfg.name}: {env_missing(env)}", f"destination:{cfg.name}")
            keys[key] = value
    # No retries inside botocore: vigil's one retry mechanism ([retry]) decides, and logs each one.
    # (botocore counts "max_attempts" as retries after the first call; "total_max_attempts" counts calls.)
    config = Config(retries={"total_max_attempts": 1, "mode": "standard"}, connect_timeout=10, read_timeout=60)
    return boto3.client("s3", endpoint_url=cfg.endpoint_url, region_name=cfg.region, config=config, **keys)


def _reason(exc: Exception) -> str:
    err = getattr(exc, "response", {}).get("Error", {})
    if err:
        return f"{err.get('Code')}: {err.get('Message') or ''}".rstrip(": ")
    return str(exc)


class _Retrying:
    """The boto3 client with every call going through vigil's retry for transient errors."""

    def __init__(self, client: Any, retry: Retry, name: str) -> None:
        self._client, self._retry, self._name = client, retry, name
        self.exceptions = client.exceptions

    def get_paginator(self, op: str) -> Any:
        return self._client.get_paginator(op)

    def __getattr__(self, op: str) -> Any:
        call = getattr(self._client, op)

        def retried(**kwargs: Any) -> Any:
            return with_retry(lambda: call(**kwargs), attempts=self._retry.attempts, delay=self._retry.delay,
                              what=f"destination {self._name}: {op}", log=logging.getLogger("vigil"))

        return retried


class _Body:
    """A streaming GET body usable in `with`; a failure mid-way is the destination's."""

    def __init__(self, dest: S3Destination, key: str, body: Any) -> None:
        self.dest, self.key, self.body = dest, key, body

    def read(self, n: int = -1) -> bytes:
        try:
            return self.body.read(n if n >= 0 else None)  # type: ignore[no-any-return]
        except Exception as exc:  # noqa: BLE001 - a dropped connection, a timeout
            raise self.dest._fail(f"cannot read {self.key}", exc) from None

    def __enter__(self) -> _Body:
        return self

    def __exit__(self, *exc: object) -> None:
        self.body.close()


class _MultipartSink:
    def __init__(self, dest: S3Destination, key: str) -> None:
        self.dest, self.key = dest, key
        self.buf = bytearray()
        self.parts: list[dict[str, Any]] = []
        self.upload_id: str | None = None
        self.done = False

    def _extra(self) -> dict[str, str]:
        extra = {}
        if self.dest.cfg.storage_class:
            extra["StorageClass"] = self.dest.cfg.storage_class
        if self.dest.cfg.sse:
            extra["ServerSideEncryption"] = self.dest.cfg.sse
        return extra

    def _part_size(self) -> int:
        return PART * (1 + len(self.parts) // 1000)

    def _upload_part(self, data: bytes) -> None:
        s3 = self.dest.s3
        if self.upload_id is None:
            self.upload_id = s3.create_multipart_upload(Bucket=self.dest.cfg.bucket, Key=self.key,
                                                        **self._extra())["UploadId"]
        n = len(self.parts) + 1
        etag = s3.upload_part(Bucket=self.dest.cfg.bucket, Key=self.key, UploadId=self.upload_id, PartNumber=n,
                              Body=data)["ETag"]
        self.parts.append({"PartNumber": n, "ETag": etag})

    def write(self, data: bytes | memoryview) -> None:
        self.buf += data
        size = self._part_size()
        try:
            while len(self.buf) >= size:
                self._upload_part(bytes(self.buf[:size]))
                del self.buf[:size]
                size = self._part_size()
        except Exception as exc:  # noqa: BLE001 - the store's refusal, told as this destination's
            raise self.dest._fail(f"cannot upload {self.key}", exc) from None

    def close(self) -> None:
        if self.done:
            return
        s3, bucket = self.dest.s3, self.dest.cfg.bucket
        try:
            if self.upload_id is None:
                s3.put_object(Bucket=bucket, Key=self.key, Body=bytes(self.buf), **self._extra())
            else:
                if self.buf:
                    self._upload_part(bytes(self.buf))
                s3.complete_multipart_upload(Bucket=bucket, Key=self.key, UploadId=self.upload_id,
                                             MultipartUpload={"Parts": self.parts})
        except Exception as exc:  # noqa: BLE001
            raise self.dest._fail(f"cannot upload {self.key}", exc) from None
        self.buf = bytearray()
        self.done = True

    def abort(self) -> None:
        try:
            if self.upload_id is not None and not self.done:
                self.dest.s3.abort_multipart_upload(Bucket=self.dest.cfg.bucket, Key=self.key,
                                                    UploadId=self.upload_id)
        except Exception:  # noqa: BLE001 - abort never raises; prune cleans what is left
            pass
        self.buf = bytearray()


class _S3Writer(BackupWriter):
    def __init__(self, dest: S3Destination, job: str, backup_id: str) -> None:
        self.dest, self.job, self.backup_id = dest, job, backup_id
        self.sinks: list[_MultipartSink] = []
        self.committed = False

    def open(self, name: str) -> _MultipartSink:
        artifact_name(self.backup_id, name)
        sink = _MultipartSink(self.dest, self.dest.key(self.job, self.backup_id, name))
        self.sinks.append(sink)
        return sink

    def read_back(self, name: str) -> Iterator[bytes]:
        artifact_name(self.backup_id, name)
        with self.dest.read(self.job, self.backup_id, name) as body:
            while chunk := body.read(READ):
                yield chunk

    def commit(self, manifest: bytes) -> None:
        key = self.dest.key(self.job, self.backup_id, MANIFEST)
        try:
            self.dest.s3.put_object(Bucket=self.dest.cfg.bucket, Body=manifest, ContentType="application/json",
                                    Key=key)
        except Exception as exc:  # noqa: BLE001 - reported as this destination's failure
            raise self.dest._fail(f"cannot upload the manifest {key}", exc) from None
        self.committed = True

    def abort(self) -> None:
        for sink in self.sinks:
            sink.abort()
        if self.committed:
            return  # a committed backup stays
        try:
            self.dest.delete_partial(self.job, self.backup_id)
        except BackupError:
            pass  # left as a partial: prune removes it


class S3Destination(Destination):
    type = "s3"

    def __init__(self, cfg: Any, retry: Retry | None = None) -> None:
        super().__init__(cfg)
        self.retry = retry or Retry()
        self.s3 = _Retrying(_client(cfg), self.retry, self.name)

    def key(self, job: str, backup_id: str, name: str = "") -> str:
        return f"{self.cfg.prefix}{job}/{backup_id}/{name}"

    def _fail(self, what: str, exc: Exception) -> BackupError:
        if isinstance(exc, BackupError):
            return exc
        kind = TransientError if is_transient(exc) else BackupError
        return kind(f"destination {self.name}: {what}: {_reason(exc)}", f"destination:{self.name}")

    def check(self, job: str, need_bytes: int) -> None:
        try:
            self.s3.head_bucket(Bucket=self.cfg.bucket)
        except Exception as exc:  # noqa: BLE001 - any failure: unreachable, no bucket, no access
            raise self._fail(f"bucket {self.cfg.bucket} not usable", exc) from None

    def begin(self, job: str, backup_id: str) -> _S3Writer:
        plain_path(backup_id)
        return _S3Writer(self, job, backup_id)

    def _backup_ids(self, job: str) -> list[str]:
        ids = []
        pages = self.s3.get_paginator("list_objects_v2").paginate(
            Bucket=self.cfg.bucket, Prefix=f"{self.cfg.prefix}{job}/", Delimiter="/")
        for page in pages:
            for p in page.get("CommonPrefixes", []):
                name = p["Prefix"].rstrip("/").rsplit("/", 1)[-1]
                if is_backup_id(name):
                    ids.append(name)
        return ids

    def scan_stored(self, job: str) -> Scan:
        complete: list[Manifest] = []
        damaged: list[DamagedBackup] = []
        try:
            for backup_id in self._backup_ids(job):
                try:
                    body = self.s3.get_object(Bucket=self.cfg.bucket, Key=self.key(job, backup_id, MANIFEST))["Body"]
                except self.s3.exceptions.NoSuchKey:
                    continue  # no manifest: not committed
                found = parse_manifest(body.read(MAX_MANIFEST + 1), job, backup_id)
                if isinstance(found, DamagedBackup):
                    damaged.append(found)
                else:
                    complete.append(found)
        except BackupError:
            raise
        except Exception as exc:  # noqa: BLE001
            raise self._fail("cannot list backups", exc) from None
        return Scan(newest_first(complete), sorted(damaged, key=lambda d: d.backup_id, reverse=True))

    def read(self, job: str, backup_id: str, name: str) -> _Body:
        plain_path(backup_id, name)
        key = self.key(job, backup_id, name)
        try:
            return _Body(self, key, self.s3.get_object(Bucket=self.cfg.bucket, Key=key)["Body"])
        except Exception as exc:  # noqa: BLE001
            raise self._fail(f"cannot read {key}", exc) from None

    def _delete_prefix(self, prefix: str, first: str | None = None) -> None:
        if first:
            self.s3.delete_object(Bucket=self.cfg.bucket, Key=first)
        for page in self.s3.get_paginator("list_objects_v2").paginate(Bucket=self.cfg.bucket, Prefix=prefix):
            objects = [{"Key": o["Key"]} for o in page.get("Contents", [])]
            if objects:
                self.s3.delete_objects(Bucket=self.cfg.bucket, Delete={"Objects": objects, "Quiet": True})

    def delete(self, job: str, backup_id: str) -> None:
        plain_path(backup_id)
        try:
            self._delete_prefix(self.key(job, backup_id), first=self.key(job, backup_id, MANIFEST))
        except Exception as exc:  # noqa: BLE001
            raise self._fail(f"cannot delete backup {backup_id}", exc) from None

    def put_status(self, job: str, data: bytes) -> None:
        key = f"{self.cfg.prefix}{job}/{STATUS}"
        try:  # one PUT replaces the object whole
            self.s3.put_object(Bucket=self.cfg.bucket, Key=key, Body=data, ContentType="application/json")
        except Exception as exc:  # noqa: BLE001 - said as the destination's error
            raise self._fail(f"cannot write {key}", exc) from None

    def partials(self, job: str) -> list[Partial]:
        out: dict[str, float] = {}
        now = time.time()
        try:
            scan = self.scan_stored(job)  # a damaged backup is not unfinished: it stays for the operator
            committed = {m.id for m in scan.complete} | {d.backup_id for d in scan.damaged}
            for backup_id in self._backup_ids(job):
                if backup_id in committed:
                    continue
                newest = 0.0
                for page in self.s3.get_paginator("list_objects_v2").paginate(
                        Bucket=self.cfg.bucket, Prefix=self.key(job, backup_id)):
                    for o in page.get("Contents", []):
                        newest = max(newest, o["LastModified"].astimezone(UTC).timestamp())
                out[backup_id] = now - newest
            for page in self.s3.get_paginator("list_multipart_uploads").paginate(
                    Bucket=self.cfg.bucket, Prefix=f"{self.cfg.prefix}{job}/"):
                for u in page.get("Uploads", []):
                    backup_id = u["Key"][len(f"{self.cfg.prefix}{job}/"):].split("/", 1)[0]
                    if not is_backup_id(backup_id):
                        continue  # not one of vigil's uploads
                    age = now - u["Initiated"].astimezone(UTC).timestamp()
                    out[backup_id] = min(out.get(backup_id, age), age)
        except Exception as exc:  # noqa: BLE001
            raise self._fail("cannot list unfinished backups", exc) from None
        return [Partial(i, age) for i, age in out.items()]

    def delete_partial(self, job: str, backup_id: str) -> None:
        plain_path(backup_id)
        try:
            for page in self.s3.get_paginator("list_multipart_uploads").paginate(
                    Bucket=self.cfg.bucket, Prefix=self.key(job, backup_id)):
                for u in page.get("Uploads", []):
                    self.s3.abort_multipart_upload(Bucket=self.cfg.bucket, Key=u["Key"], UploadId=u["UploadId"])
            scan = self.scan_stored(job)
            if not any(m.id == backup_id for m in scan.complete) and not any(
                    d.backup_id == backup_id for d in scan.damaged):
                self._delete_prefix(self.key(job, backup_id))
        except BackupError:
            raise
        except Exception as exc:  # noqa: BLE001
            raise self._fail(f"cannot clean up unfinished backup {backup_id}", exc) from None
