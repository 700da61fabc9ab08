"""A manifest read from a destination is checked before anything uses it (SPEC §4)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vigil.formats.manifest import Artifact, Manifest, ManifestError, is_backup_id, new_backup_id

ID = "20260102T030405Z-abcdef"


def doc(**changes: Any) -> dict[str, Any]:
    d = {"format": 1, "id": ID, "job": "app", "host": "h", "vigil_version": "1",
         "started_at": "2026-01-02T03:04:05.000Z", "finished_at": "2026-01-02T03:04:09.000Z",
         "artifacts": [{"name": "files-app.tar.zst", "source": "app", "type": "files", "size": 10,
                        "sha256": "ab" * 32, "compression": "zstd", "entries": 3, "bytes": 20, "future": 1}],
         "warnings": ["w"], "sources": []}
    d.update(changes)
    return d


def artifact(**changes: Any) -> dict[str, Any]:
    a = doc()["artifacts"][0]
    a.update(changes)
    return a


def loads(d: Any) -> Manifest:
    return Manifest.loads(json.dumps(d), expect_id=ID, expect_job="app")


def test_a_good_manifest_loads_and_keeps_unknown_keys() -> None:
    m = loads(doc())
    assert m.id == ID and m.size == 10 and m.artifacts[0].extra == {"future": 1}
    assert m.started.year == 2026


@pytest.mark.parametrize("d, says", [
    (doc(id="../../../somedir"), "id '../../../somedir' is not a backup id"),
    (doc(id="/etc"), "is not a backup id"),
    (doc(id="20260102T030405Z-abcdee"), "is not its directory's name"),
    (doc(job="other"), "job 'other' is not 'app'"),
    (doc(started_at="garbage"), "started_at: 'garbage' is not an ISO 8601 time"),
    (doc(finished_at=5), "finished_at: '5' is not a string"),
    (doc(started_at="0001-01-01T00:00:00Z"), "not a plausible backup time"),
    (doc(format=2), "unsupported manifest format 2"),
    (doc(format=True), "unsupported manifest format True"),
    (doc(artifacts={}), "artifacts: '{}' is not a list"),
    (doc(artifacts=["x"]), "artifacts entry: not a JSON object"),
    (doc(artifacts=[artifact(name="/etc/hostname")]), "artifact name '/etc/hostname' is not a plain file name"),
    (doc(artifacts=[artifact(name="../x")]), "is not a plain file name"),
    (doc(artifacts=[artifact(name="..")]), "is not a plain file name"),
    (doc(artifacts=[artifact(name="")]), "is not a plain file name"),
    (doc(artifacts=[artifact(name="a\x00b")]), "is not a plain file name"),
    (doc(artifacts=[artifact(name="manifest.json")]), "is not a plain file name"),
    (doc(artifacts=[artifact(), artifact()]), "listed twice"),
    (doc(artifacts=[artifact(size=-1)]), "size -1 is negative"),
    (doc(artifacts=[artifact(size=1.5)]), "size: '1.5' is not an integer"),
    (doc(artifacts=[artifact(size=True)]), "size: 'True' is not an integer"),
    (doc(artifacts=[artifact(entries=-3)]), "entries -3 is negative"),
    (doc(artifacts=[artifact(sha256="zz" * 32)]), "is not 64 hex digits"),
    (doc(artifacts=[artifact(sha256="ab")]), "is not 64 hex digits"),
    (doc(artifacts=[artifact(tables={"t": "many"})]), "row counts must be integers"),
    (doc(warnings=[1]), "warnings: not a list of strings"),
    (doc(kind="diff"), "neither full nor incremental"),
    (doc(kind="full", base="20260101T000000Z-000001"), "a full backup has no base or chain"),
    (doc(kind="incremental", chain=[]), "needs a list of backup ids"),
    (doc(kind="incremental", chain=["../x"], base="../x"), "needs a list of backup ids"),
    (doc(kind="incremental", chain=["20260101T000000Z-000001"], base="20260101T000000Z-000002"),
     "is not the last id of the chain"),
    (doc(kind="incremental", chain=["20270101T000000Z-000001"], base="20270101T000000Z-000001"),
     "must be older than the backup"),
    (doc(kind="incremental", chain=["20260101T000000Z-000002", "20250101T000000Z-000001"],
         base="20250101T000000Z-000001"), "oldest first"),
    (doc(kind="incremental", chain=[ID], base=ID), "each once"),
    ([], "manifest: not a JSON object"),
])
def test_a_manifest_that_does_not_check_out_is_damaged(d: Any, says: str) -> None:
    with pytest.raises(ManifestError) as info:
        loads(d)
    assert says in str(info.value)


def test_missing_keys_and_junk_are_damaged() -> None:
    for key in ("id", "job", "host", "started_at", "artifacts"):
        d = doc()
        del d[key]
        with pytest.raises(ManifestError, match=f"{key}: missing"):
            loads(d)
    for junk in (b"{", b"\xff", b"[" * 100000, b"1" * (17 << 20)):
        with pytest.raises(ManifestError):
            Manifest.loads(junk)


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=20,
)


@settings(max_examples=300, deadline=None, derandomize=True)
@given(st.sampled_from(list(doc())), JSON, st.sampled_from(list(artifact())), JSON)
def test_any_value_anywhere_loads_or_is_damaged(key: str, value: Any, art_key: str, art_value: Any) -> None:
    for d in (doc(**{key: value}), doc(artifacts=[artifact(**{art_key: art_value})])):
        try:
            m = loads(d)
        except ManifestError:
            continue
        # What loads lets through is safe to use: plain names, times that parse, sizes that add up.
        assert all("/" not in a.name and a.name not in ("", ".", "..") for a in m.artifacts)
        assert m.started.tzinfo is not None and m.size >= 0


def test_backup_ids_sort_by_time_and_never_collide() -> None:
    now = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    ids = {new_backup_id(now) for _ in range(2000)}
    assert len(ids) > 1990  # 16M space: a collision in 2000 draws is ~10% likely; more than a few is a bug
    assert all(i.startswith("20260102T030405Z-") and is_backup_id(i) for i in ids)
    assert not is_backup_id("20260102T030405Z")


def test_manifest_round_trip_and_rejects_junk() -> None:
    m = Manifest(id="20260102T030405Z-abcdef", job="j", host="h", vigil_version="0", started_at="2026-01-02T03:04:05.000Z",
                 finished_at="2026-01-02T03:04:09.000Z", artifacts=[Artifact("files-app.tar.zst", "app", "files", 10, "0" * 64,
                                                      entries=3, bytes=20)], warnings=["w"])
    back = Manifest.loads(m.dumps())
    assert back.to_json() == m.to_json() and back.size == 10
    for junk in (b"{", b"[]", b'{"format": 2}', b'{"format": 1}'):
        with pytest.raises(ManifestError):
            Manifest.loads(junk)


def test_an_incremental_manifest_round_trips_and_an_old_one_is_full() -> None:
    chain = ["20260101T000000Z-000001", "20260102T030405Z-000002"]  # the same second as ID: still older
    m = loads(doc(kind="incremental", base=chain[-1], chain=chain))
    assert (m.kind, m.base, m.chain) == ("incremental", chain[-1], chain)
    again = Manifest.loads(m.dumps(), expect_id=ID, expect_job="app")
    assert (again.kind, again.base, again.chain) == ("incremental", chain[-1], chain)
    old = loads(doc())
    assert (old.kind, old.base, old.chain) == ("full", None, [])


def test_state_size_counts_the_tree_not_what_an_incremental_stored() -> None:
    m = loads(doc(artifacts=[artifact(size=10, bytes=20, state_bytes=5000),
                             artifact(name="db-db.sqlite.zst", type="sqlite", size=300),
                             artifact(name="index-app.jsonl.zst", type="index", size=99)]))
    assert m.state_size == 5000 + 300
    assert loads(doc()).state_size == 20  # older manifests: the archive's content bytes
