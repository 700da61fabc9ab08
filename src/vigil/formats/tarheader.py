"""Tar member headers: a fast ustar path, POSIX pax where ustar cannot say it.

`tarfile.TarInfo.tobuf` costs ~27 µs a member, most of a small file's budget.
Plain members (ASCII name under 100 bytes, sizes and times in range) get the
same 512 bytes from a struct-like fast path; everything else (long or
non-ASCII names, times before 1970 or after 2242, large ids) goes through
tarfile's pax writer, so the archive stays POSIX pax that GNU tar, bsdtar and
Python read alike. tests/unit/formats/test_tarheader.py checks the two agree.
"""

from __future__ import annotations

import struct
import tarfile
from zlib import adler32

REGTYPE, LNKTYPE, SYMTYPE, CHRTYPE, BLKTYPE, DIRTYPE, FIFOTYPE = (
    tarfile.REGTYPE, tarfile.LNKTYPE, tarfile.SYMTYPE, tarfile.CHRTYPE,
    tarfile.BLKTYPE, tarfile.DIRTYPE, tarfile.FIFOTYPE,
)
_MAX12 = 8**11
_MAX8 = 8**7
_TAIL = b"ustar\x0000"


_USTAR = struct.Struct("100s8s8s8s12s12s8sc100s8s32s32s8s8s167s")
_NUL8 = b"\x00" * 8
_BLANK = b"        "


def header(
    name: str,
    type_: bytes,
    *,
    mode: int,
    uid: int,
    gid: int,
    size: int,
    mtime: int,
    linkname: str = "",
    uname: str = "",
    gname: str = "",
    devmajor: int = 0,
    devminor: int = 0,
) -> bytes:
    """The header block(s) of one member, name relative and without leading './'."""
    if type_ == DIRTYPE and not name.endswith("/"):
        name += "/"
    if (
        name.isascii() and linkname.isascii() and uname.isascii() and gname.isascii()
        and len(name) <= 100 and len(linkname) <= 100 and len(uname) <= 32 and len(gname) <= 32
        and 0 <= size < _MAX12 and 0 <= mtime < _MAX12 and 0 <= uid < _MAX8 and 0 <= gid < _MAX8
        and 0 <= devmajor < _MAX8 and 0 <= devminor < _MAX8
    ):
        # Like tarfile: device numbers only for device members, NULs otherwise.
        is_dev = type_ == CHRTYPE or type_ == BLKTYPE
        head = _USTAR.pack(
            name.encode(), b"%07o\x00" % (mode & 0o7777), b"%07o\x00" % uid, b"%07o\x00" % gid,
            b"%011o\x00" % size, b"%011o\x00" % mtime, _BLANK, type_, linkname.encode(), _TAIL,
            uname.encode(), gname.encode(),
            b"%07o\x00" % devmajor if is_dev else _NUL8, b"%07o\x00" % devminor if is_dev else _NUL8, b"",
        )
        # The checksum is the byte sum of the header. Every byte here is ASCII, so the
        # sum stays below Adler-32's modulus (512 * 127 < 65521) and its low half - 1 is
        # exactly that sum, ten times faster than sum().
        return head[:148] + b"%06o\x00" % ((adler32(head) & 0xFFFF) - 1) + head[155:]
    return _pax(name, type_, mode, uid, gid, size, mtime, linkname, uname, gname, devmajor, devminor)


def _pax(name: str, type_: bytes, mode: int, uid: int, gid: int, size: int, mtime: int,
         linkname: str, uname: str, gname: str, devmajor: int, devminor: int) -> bytes:
    ti = tarfile.TarInfo(name)
    ti.type, ti.mode, ti.uid, ti.gid, ti.size, ti.mtime = type_, mode & 0o7777, uid, gid, size, mtime
    ti.linkname, ti.uname, ti.gname, ti.devmajor, ti.devminor = linkname, uname, gname, devmajor, devminor
    return ti.tobuf(tarfile.PAX_FORMAT, "utf-8", "surrogateescape")


def padding(size: int) -> bytes:
    return b"\x00" * (-size % 512)


END = b"\x00" * 1024
