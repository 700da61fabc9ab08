"""Index lines for incremental backups (SPEC §11): when a file counts as unchanged, and the
fast reading of the lines one archive of a chain holds."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vigil.formats.index import held_in, iter_index, join_line, line_parts, unchanged

IDENT = (1_700_000_000_123_456_789, 1_700_000_001_000_000_001, 4242)


def entry(**changes):
    head, tail = line_parts("a/b.txt", "file", 10, 0o644, 1_700_000_000, False, 33, 33, ident=IDENT,
                            in_="20260101T000000Z-000001")
    [e] = iter_index([join_line(head, "ab" * 32, tail)])
    e.update(changes)
    return e


def test_an_entry_written_with_its_stat_reads_back_unchanged() -> None:
    e = entry()
    assert (e["mtime_ns"], e["ctime_ns"], e["ino"], e["in"]) == (*IDENT, "20260101T000000Z-000001")
    assert unchanged(e, 10, 0o644, 33, 33, IDENT)


@pytest.mark.parametrize("size, mode, uid, gid, ident", [
    (11, 0o644, 33, 33, IDENT),
    (10, 0o600, 33, 33, IDENT),
    (10, 0o644, 0, 33, IDENT),
    (10, 0o644, 33, 0, IDENT),
    (10, 0o644, 33, 33, (IDENT[0] + 1, IDENT[1], IDENT[2])),  # a nanosecond is a change
    (10, 0o644, 33, 33, (IDENT[0], IDENT[1] + 1, IDENT[2])),  # same size and mtime: ctime tells
    (10, 0o644, 33, 33, (IDENT[0], IDENT[1], IDENT[2] + 1)),  # replaced by rename
])
def test_any_difference_in_stat_is_a_change(size, mode, uid, gid, ident) -> None:
    assert not unchanged(entry(), size, mode, uid, gid, ident)


@pytest.mark.parametrize("e", [
    None,
    entry(type="symlink"),
    entry(changed_during_read=True),  # its stored bytes may not be the file's
    {k: v for k, v in entry().items() if k != "ctime_ns"},  # an index from before incremental backups
    {k: v for k, v in entry().items() if k != "in"},
])
def test_what_never_counts_as_unchanged(e) -> None:
    assert not unchanged(e, 10, 0o644, 33, 33, IDENT)


def test_the_line_is_json() -> None:
    head, tail = line_parts("x", "dir", 0, 0o755, 0, False, 0, 0)
    assert json.loads(join_line(head, None, tail)) == {
        "path": "x", "type": "dir", "size": 0, "mode": 0o755, "mtime": 0, "sha256": None,
        "changed_during_read": False, "uid": 0, "gid": 0}


def _lines(n: int, every: int, backup: str) -> list[bytes]:
    out = []
    for i in range(n):
        head, tail = line_parts(f"d/f{i}", "file", i, 0o644, 0, False, 0, 0, ident=IDENT,
                                in_=backup if i % every == 0 else "20250101T000000Z-000000")
        out.append(join_line(head, "ab" * 32, tail))
    return out


@settings(max_examples=100, deadline=None)
@given(st.integers(0, 60), st.integers(1, 7), st.integers(1, 400))
def test_only_takes_exactly_the_lines_that_name_a_backup(n, every, cut) -> None:
    """The fast path of a chain's older archive: the same entries as a full read, filtered."""
    backup = "20260101T000000Z-000001"
    data = b"".join(_lines(n, every, backup))
    chunks = [data[i:i + cut] for i in range(0, len(data), cut)]
    fast = list(iter_index(chunks, held_in(backup)))
    assert fast == [e for e in iter_index(chunks) if e.get("in") == backup]
