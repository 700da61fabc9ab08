"""Pure pieces: durations, tar headers, manifests, backup ids."""

from __future__ import annotations

import tarfile
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from vigil.formats import tarheader as th
from vigil.formats.manifest import Artifact, Manifest, ManifestError, is_backup_id, new_backup_id
from vigil.timeutil import format_duration, parse_duration


@pytest.mark.parametrize("text,seconds", [("90s", 90), ("30m", 1800), ("3h", 10800), ("7d", 604800),
                                          ("1h30m", 5400), ("2w", 1209600), (" 5M ", 300)])
def test_durations(text: str, seconds: int) -> None:
    assert parse_duration(text) == timedelta(seconds=seconds)


@pytest.mark.parametrize("text", ["", "3", "3x", "h", "1h 2x", "-5m", "3 hours"])
def test_bad_durations(text: str) -> None:
    with pytest.raises(ValueError, match="bad duration"):
        parse_duration(text)


@pytest.mark.parametrize("text", ["99999999999999d", "36501d", "9" * 5000 + "s"])
def test_durations_past_a_century_are_refused(text: str) -> None:
    with pytest.raises(ValueError, match="too long"):
        parse_duration(text)


def test_format_duration() -> None:
    assert format_duration(5) == "5s"
    assert format_duration(3725) == "1h2m"


names = st.text(st.characters(min_codepoint=32, max_codepoint=0x2FFF, blacklist_categories=("Cs",)),
                min_size=1, max_size=160).filter(lambda s: "\x00" not in s)


@given(name=names, mode=st.integers(0, 0o7777), uid=st.integers(0, 2**24), gid=st.integers(0, 2**24),
       size=st.integers(0, 2**40), mtime=st.integers(-2**34, 2**40),
       type_=st.sampled_from([th.REGTYPE, th.DIRTYPE, th.SYMTYPE, th.LNKTYPE, th.FIFOTYPE]),
       link=st.text(st.characters(min_codepoint=33, max_codepoint=0x7F), max_size=120))
def test_header_reads_back_like_tarfile_writes_it(name, mode, uid, gid, size, mtime, type_, link) -> None:
    """Fast path or pax fallback, tarfile must read exactly what was meant."""
    if type_ not in (th.SYMTYPE, th.LNKTYPE):
        link = ""
    buf = th.header(name, type_, mode=mode, uid=uid, gid=gid, size=size, mtime=mtime, linkname=link,
                    uname="www-data", gname="www-data")
    assert len(buf) % 512 == 0
    info = tarfile.TarInfo.frombuf(buf[:512], "utf-8", "surrogateescape") if len(buf) == 512 else None
    if info is None:  # pax: parse through a whole archive
        import io

        data = buf + b"\0" * size if size < 1 << 16 else None
        if data is None:
            return
        with tarfile.open(fileobj=io.BytesIO(data + th.padding(size) + th.END), mode="r:") as tar:
            info = tar.next()
    expected = name.rstrip("/") if type_ == th.DIRTYPE else name
    assert info.name.rstrip("/") == expected.rstrip("/") or info.name == expected
    assert (info.mode, info.uid, info.gid, info.mtime, info.type) == (mode, uid, gid, mtime, type_)
    assert info.linkname == link
    if type_ == th.REGTYPE:
        assert info.size == size


def test_fast_header_is_byte_identical_to_tarfile() -> None:
    buf = th.header("app/x.php", th.REGTYPE, mode=0o644, uid=33, gid=33, size=10, mtime=1700000000,
                    uname="www-data", gname="www-data")
    ti = tarfile.TarInfo("app/x.php")
    ti.mode, ti.uid, ti.gid, ti.size, ti.mtime, ti.uname, ti.gname = 0o644, 33, 33, 10, 1700000000, "www-data", "www-data"
    assert buf == ti.tobuf(tarfile.PAX_FORMAT, "utf-8", "surrogateescape")


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
