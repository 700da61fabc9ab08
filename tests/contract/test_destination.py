"""The destination contract (vigil.destinations.base), run against every destination.

A new destination is a new module plus one line in CASES: how to make one on
a fresh store, and how to make that store unreachable for a while.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import msgspec
import pytest
import zstandard
from failing_destination import POINTS, FailingDestination
from memory_destination import MemoryDestination

from vigil.config.schema import LocalDestination, S3Destination
from vigil.destinations.base import BackupWriter, Destination, make_destination
from vigil.errors import BackupError, Damaged
from vigil.formats.manifest import MANIFEST, Artifact, Manifest
from vigil.pipeline.backupset import BackupSet

JOB = "app"
IDS = [f"2026010{d}T000000Z-00000{d}" for d in range(1, 8)]
ART = "files-app.tar.zst"


def _local(request: pytest.FixtureRequest, tmp: Path) -> Destination:
    return make_destination(LocalDestination(name="disk", path=tmp / "disk"))


def _local_down(dest: Destination) -> Callable[[], None]:
    job_dir = dest.cfg.path / JOB
    os.rename(job_dir, job_dir.with_name("away"))  # the disk is unmounted under the run
    return lambda: os.rename(job_dir.with_name("away"), job_dir)


def _s3(request: pytest.FixtureRequest, tmp: Path) -> Destination:
    server = request.getfixturevalue("s3_server")
    _, bucket = request.getfixturevalue("s3_bucket")
    return make_destination(S3Destination(
        name="offsite", bucket=bucket, prefix="backups/", endpoint_url=server, region="us-east-1",
        access_key_id_env="VIGIL_TEST_S3_KEY", secret_access_key_env="VIGIL_TEST_S3_SECRET"))


def _s3_down(dest: Destination) -> Callable[[], None]:
    cfg = dest.cfg
    dest.cfg = msgspec.structs.replace(cfg, bucket="vigil-no-such-bucket")  # the bucket is gone
    return lambda: setattr(dest, "cfg", cfg)


def _memory_down(dest: Destination) -> Callable[[], None]:
    dest.down = True  # type: ignore[attr-defined]
    return lambda: setattr(dest, "down", False)


@dataclass(frozen=True)
class Case:
    make: Callable[[pytest.FixtureRequest, Path], Destination]
    down: Callable[[Destination], Callable[[], None]]  # make the store unreachable; returns its repair


CASES = [
    pytest.param(Case(_local, _local_down), id="local"),
    pytest.param(Case(_s3, _s3_down), id="s3"),
    pytest.param(Case(lambda request, tmp: MemoryDestination(), _memory_down), id="memory"),
]


@pytest.fixture(params=CASES)
def case(request: pytest.FixtureRequest) -> Case:
    return request.param


@pytest.fixture
def dest(case: Case, request: pytest.FixtureRequest, tmp_path: Path) -> Destination:
    d = case.make(request, tmp_path)
    d.check(JOB, 0)
    return d


def manifest(backup_id: str, files: dict[str, bytes], started_at: str = "2026-01-01T00:00:00.000Z",
             **change: object) -> bytes:
    arts = [Artifact(name=n, source="app", type="files", size=len(b), sha256=hashlib.sha256(b).hexdigest())
            for n, b in files.items()]
    m = Manifest(id=backup_id, job=JOB, host="h", vigil_version="0", started_at=started_at,
                 finished_at=started_at, artifacts=arts)
    return json.dumps({**m.to_json(), **change}).encode()


def write(writer: BackupWriter, files: dict[str, bytes]) -> None:
    for name, data in files.items():
        sink = writer.open(name)
        sink.write(data)
        sink.close()


def store(dest: Destination, backup_id: str, files: dict[str, bytes] | None = None, **kw: object) -> None:
    files = {ART: b"archive " + backup_id.encode()} if files is None else files
    writer = dest.begin(JOB, backup_id)
    write(writer, files)
    writer.commit(manifest(backup_id, files, **kw))  # type: ignore[arg-type]


def listed(dest: Destination) -> list[str]:
    return [m.id for m in dest.list(JOB)]


def partial_ids(dest: Destination) -> list[str]:
    return sorted(p.backup_id for p in dest.partials(JOB))


# --- commit ------------------------------------------------------------------------


def test_a_backup_is_listed_only_once_committed(dest: Destination) -> None:
    data = os.urandom(300_000)
    writer = dest.begin(JOB, IDS[0])
    write(writer, {ART: data})
    assert b"".join(writer.read_back(ART)) == data
    assert listed(dest) == [] and dest.scan(JOB).damaged == []
    writer.commit(manifest(IDS[0], {ART: data}))
    assert listed(dest) == [IDS[0]] and partial_ids(dest) == []
    with dest.read(JOB, IDS[0], ART) as fh:
        assert fh.read() == data
    with dest.read(JOB, IDS[0], MANIFEST) as fh:
        assert json.loads(fh.read())["id"] == IDS[0]
    writer.abort()  # after a commit: the backup stays
    assert listed(dest) == [IDS[0]]


def test_the_status_object_is_replaced_whole_and_is_no_backup(dest: Destination) -> None:
    store(dest, IDS[0])
    dest.put_status(JOB, b'{"outcome": "success"}')
    dest.put_status(JOB, b'{"outcome": "failed"}')
    assert listed(dest) == [IDS[0]] and partial_ids(dest) == [] and dest.scan(JOB).damaged == []


def test_an_aborted_writer_leaves_nothing(dest: Destination) -> None:
    store(dest, IDS[0])
    writer = dest.begin(JOB, IDS[1])
    write(writer, {"db-db.sql.zst": b"dump"})
    writer.open(ART).write(os.urandom(9 << 20))  # mid-way through an artifact (an S3 part is uploaded)
    writer.abort()
    assert listed(dest) == [IDS[0]] and partial_ids(dest) == []


def test_an_abandoned_writer_is_a_partial_with_its_age_until_delete_partial(dest: Destination) -> None:
    store(dest, IDS[0])
    writer = dest.begin(JOB, IDS[1])
    write(writer, {"db-db.sql.zst": b"dump"})
    writer.open(ART).write(os.urandom(9 << 20))
    # The process was killed here: no abort, no commit.
    assert listed(dest) == [IDS[0]]
    [partial] = dest.partials(JOB)
    assert partial.backup_id == IDS[1] and -1 <= partial.age < 600
    dest.delete_partial(JOB, IDS[0])  # committed: left alone
    dest.delete_partial(JOB, IDS[2])  # not there: no error
    dest.delete_partial(JOB, IDS[1])
    assert partial_ids(dest) == [] and listed(dest) == [IDS[0]]


def test_abort_never_raises(case: Case, dest: Destination) -> None:
    writer = dest.begin(JOB, IDS[0])
    write(writer, {ART: b"x" * 1000})
    repair = case.down(dest)
    with pytest.raises(BackupError):
        writer.commit(manifest(IDS[0], {ART: b"x" * 1000}))
    writer.abort()
    writer.abort()
    repair()
    writer.abort()
    assert listed(dest) == []
    for p in dest.partials(JOB):  # what abort could not remove while the store was away, prune does
        dest.delete_partial(JOB, p.backup_id)
    assert partial_ids(dest) == []
    # A writer that never wrote, aborted twice, and a fresh backup afterwards.
    other = dest.begin(JOB, IDS[1])
    other.abort()
    other.abort()
    store(dest, IDS[2])
    assert listed(dest) == [IDS[2]]


def test_errors_are_the_destinations_own(case: Case, dest: Destination) -> None:
    store(dest, IDS[0])
    with pytest.raises(BackupError, match=dest.name):
        dest.read(JOB, IDS[0], "db-other.sql.zst")
    writer = dest.begin(JOB, IDS[1])
    with pytest.raises(BackupError, match=dest.name):
        b"".join(writer.read_back("never-written"))
    repair = case.down(dest)
    with pytest.raises(BackupError, match=dest.name):
        sink = writer.open(ART)  # some fail here, some on the first write, some only when it is finished
        sink.write(b"y" * 1000)
        sink.close()
    with pytest.raises(BackupError, match=dest.name):
        dest.read(JOB, IDS[0], ART)
    with pytest.raises(BackupError, match=dest.name):
        writer.commit(manifest(IDS[1], {}))
    writer.abort()
    repair()
    dest.delete(JOB, IDS[5])  # not there: no error
    assert listed(dest) == [IDS[0]]


# --- list ---------------------------------------------------------------------------


def test_list_is_newest_first_by_time(dest: Destination) -> None:
    times = {
        IDS[0]: "2026-01-01T09:00:00.000Z",
        IDS[1]: "2026-01-01T10:30:00+02:00",  # 08:30 UTC: the oldest, though its text sorts last
        IDS[2]: "2026-01-01T09:00:00.500Z",
        IDS[3]: "2026-01-01T09:00:00Z",  # the same time as IDS[0]: the id decides
    }
    for backup_id, started in times.items():
        store(dest, backup_id, started_at=started)
    assert listed(dest) == [IDS[2], IDS[3], IDS[0], IDS[1]]


# --- what is read back is untrusted --------------------------------------------------


HOSTILE = {
    "id-outside": {"id": "../elsewhere"},
    "id-of-another-backup": {"id": IDS[0]},
    "other-job": {"job": "../other"},
    "artifact-with-slash": {"artifacts": [{"name": "../../elsewhere/keep", "source": "app", "type": "files",
                                           "size": 1, "sha256": "0" * 64}]},
    "artifact-in-subdir": {"artifacts": [{"name": "a/b", "source": "app", "type": "files", "size": 1,
                                          "sha256": "0" * 64}]},
    "artifact-named-manifest": {"artifacts": [{"name": MANIFEST, "source": "app", "type": "files", "size": 1,
                                               "sha256": "0" * 64}]},
    "time-garbage": {"started_at": "garbage"},
    "time-year-0": {"finished_at": "0000-01-01T00:00:00Z"},
    "time-not-a-string": {"started_at": 1700000000},
}


@pytest.mark.parametrize("change", HOSTILE.values(), ids=HOSTILE.keys())
def test_a_hostile_manifest_is_damaged_never_complete(dest: Destination, change: dict[str, object]) -> None:
    store(dest, IDS[0])
    store(dest, IDS[1], **change)
    scan = dest.scan(JOB)
    assert [m.id for m in scan.complete] == [IDS[0]]
    assert [d.backup_id for d in scan.damaged] == [IDS[1]] and scan.damaged[0].reason.startswith(MANIFEST)
    assert listed(dest) == [IDS[0]]
    assert partial_ids(dest) == []  # damaged is not unfinished: prune leaves it for the operator


@pytest.mark.parametrize("raw", [b"", b"not json", b"[1, 2]", b'{"format": 1}', b"{" * 100_000],
                         ids=["empty", "not-json", "array", "keys-missing", "deep"])
def test_a_manifest_that_is_no_manifest_is_damaged(dest: Destination, raw: bytes) -> None:
    writer = dest.begin(JOB, IDS[1])
    writer.commit(raw)
    assert [d.backup_id for d in dest.scan(JOB).damaged] == [IDS[1]] and listed(dest) == []


NOT_PLAIN = ["../" + IDS[0], "/etc/hostname", "", ".", "..", "a/b", "x\0y"]


def test_names_that_are_not_plain_are_refused(dest: Destination) -> None:
    store(dest, IDS[0])
    for name in NOT_PLAIN:
        with pytest.raises(Damaged):
            dest.read(JOB, IDS[0], name)
    for backup_id in ["..", "", "/tmp", "../app", f"{IDS[0]}/..", IDS[0] + "x"]:
        with pytest.raises(Damaged):
            dest.read(JOB, backup_id, MANIFEST)
        with pytest.raises(Damaged):
            dest.delete(JOB, backup_id)
        with pytest.raises(Damaged):
            dest.delete_partial(JOB, backup_id)
        with pytest.raises(Damaged):
            dest.begin(JOB, backup_id)
    writer = dest.begin(JOB, IDS[1])
    for name in NOT_PLAIN + [MANIFEST]:
        with pytest.raises(Damaged):
            writer.open(name)
        with pytest.raises(Damaged):
            b"".join(writer.read_back(name))
    writer.abort()
    assert listed(dest) == [IDS[0]] and partial_ids(dest) == []
    with dest.read(JOB, IDS[0], ART) as fh:
        assert fh.read() == b"archive " + IDS[0].encode()


# --- the fan-out ---------------------------------------------------------------------


def _produce(backup_set: BackupSet, data: bytes) -> None:
    backup_set.source = "app"
    with backup_set.artifact(ART, "files", threads=0) as stream:
        for at in range(0, len(data), 1 << 16):
            stream.write(data[at:at + (1 << 16)])


@pytest.mark.parametrize("fail_at", POINTS)
def test_a_failing_destination_is_dropped_and_only_it(dest: Destination, fail_at: str) -> None:
    failing = FailingDestination(fail_at)
    data = os.urandom(200_000) + bytes(300_000)
    writers = {dest.name: dest.begin(JOB, IDS[0]), failing.name: failing.begin(JOB, IDS[0])}
    backup_set = BackupSet(writers, logging.getLogger("test"))
    _produce(backup_set, data)
    backup_set.verify()
    committed: list[str] = []
    m = Manifest(id=IDS[0], job=JOB, host="h", vigil_version="0", started_at="2026-01-01T00:00:00Z",
                 finished_at="2026-01-01T00:00:01Z", artifacts=backup_set.artifacts[False])
    backup_set.commit({False: m}, lambda name, _: committed.append(name))
    backup_set.abort()  # the run failed (a destination did): only what was not committed goes

    assert committed == [dest.name] and list(backup_set.failed) == [failing.name]
    assert backup_set.failed[failing.name].startswith(f"destination {failing.name}: ")
    assert "destination failing: destination" not in backup_set.failed[failing.name]
    assert listed(dest) == [IDS[0]] and partial_ids(dest) == []
    assert listed(failing) == [] and partial_ids(failing) == []
    with dest.read(JOB, IDS[0], ART) as fh:
        assert zstandard.ZstdDecompressor().decompressobj().decompress(fh.read()) == data


def test_when_every_destination_fails_the_backup_set_says_which() -> None:
    for fail_at in POINTS:
        failing = FailingDestination(fail_at)
        backup_set = BackupSet({failing.name: failing.begin(JOB, IDS[0])}, logging.getLogger("test"))
        with pytest.raises(BackupError) as raised:
            _produce(backup_set, os.urandom(100_000))
            backup_set.verify()
            backup_set.commit({False: Manifest(id=IDS[0], job=JOB, host="h", vigil_version="0",
                                               started_at="2026-01-01T00:00:00Z", finished_at="2026-01-01T00:00:00Z",
                                               artifacts=backup_set.artifacts[False])}, lambda *_: None)
            assert backup_set.failed  # commit drops it; the run turns that into its failure
            raise BackupError(backup_set.failed[failing.name], f"destination:{failing.name}")
        assert raised.value.step == "destination:failing" and str(raised.value).startswith("destination failing: ")
        backup_set.abort()
        assert listed(failing) == [] and partial_ids(failing) == []


# --- what only a local disk can hold --------------------------------------------------


def test_local_a_manifest_that_is_not_a_file_is_damaged(tmp_path: Path) -> None:
    dest = make_destination(LocalDestination(name="disk", path=tmp_path))
    dest.check(JOB, 0)
    store(dest, IDS[0])
    (tmp_path / JOB / IDS[1] / MANIFEST).mkdir(parents=True)
    (tmp_path / JOB / IDS[2]).mkdir()
    (tmp_path / JOB / IDS[2] / MANIFEST).symlink_to(tmp_path / "nowhere")
    scan = dest.scan(JOB)
    assert [m.id for m in scan.complete] == [IDS[0]]
    assert [d.backup_id for d in scan.damaged] == [IDS[2], IDS[1]]
    assert partial_ids(dest) == []
