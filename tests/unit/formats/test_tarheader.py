"""Tar headers as vigil writes them, read back by tarfile."""

from __future__ import annotations

import tarfile

from hypothesis import given
from hypothesis import strategies as st

from vigil.formats import tarheader as th

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
