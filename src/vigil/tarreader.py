"""A streaming reader for POSIX pax / ustar archives, for verify and restore.

tarfile's stream mode spends most of its time shuffling 10 KiB buffers and
unpacking header checksums byte by byte; this reader takes large reads from
the decompressor, parses ustar headers with slicing, applies pax extended
headers (and GNU long names), and hands out member contents in big chunks.
It reads what vigil writes and what GNU tar and bsdtar write in pax/ustar/
gnu formats; sparse members are refused.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterator

BLOCK = 512
READ = 1 << 20
REGTYPES = (b"0", b"\x00", b"7")


class TarFormatError(Exception):
    pass


@dataclass
class Member:
    name: str
    type: bytes
    size: int
    mode: int
    uid: int
    gid: int
    mtime: int
    linkname: str
    uname: str = ""
    gname: str = ""

    def isreg(self) -> bool:
        return self.type in REGTYPES

    def isdir(self) -> bool:
        return self.type == b"5"

    def issym(self) -> bool:
        return self.type == b"2"

    def islnk(self) -> bool:
        return self.type == b"1"

    def isfifo(self) -> bool:
        return self.type == b"6"

    def ischr(self) -> bool:
        return self.type == b"3"

    def isblk(self) -> bool:
        return self.type == b"4"


def _num(field: bytes) -> int:
    if field[:1] in (b"\x80", b"\xff"):  # GNU base-256, for values octal cannot hold
        value = int.from_bytes(field[1:], "big")
        return value - (1 << (8 * (len(field) - 1))) if field[0] == 0xFF else value
    text = field.split(b"\x00", 1)[0].strip()
    return int(text, 8) if text else 0


def _str(field: bytes) -> str:
    return field.split(b"\x00", 1)[0].decode("utf-8", "surrogateescape")


def _pax(data: bytes) -> dict[str, str]:
    out, pos = {}, 0
    while pos < len(data):
        space = data.index(b" ", pos)
        length = int(data[pos:space])
        record = data[space + 1:pos + length - 1]  # without the trailing newline
        key, _, value = record.partition(b"=")
        out[key.decode()] = value.decode("utf-8", "surrogateescape")
        pos += length
    return out


class TarStream:
    """Iterate members; read (or skip) each member's content before the next."""

    def __init__(self, fileobj: Any) -> None:
        self.f = fileobj
        self.buf = bytearray()
        self.pos = 0
        self._left = 0  # content bytes of the current member not yet consumed
        self._pad = 0

    def _fill(self, n: int) -> None:
        while len(self.buf) - self.pos < n:
            if self.pos:
                del self.buf[:self.pos]
                self.pos = 0
            chunk = self.f.read(max(READ, n))
            if not chunk:
                raise TarFormatError("unexpected end of archive")
            self.buf += chunk

    def _take(self, n: int) -> bytes:
        self._fill(n)
        out = bytes(self.buf[self.pos:self.pos + n])
        self.pos += n
        return out

    def content(self) -> Iterator[bytes]:
        """The current member's content, in chunks of up to 1 MiB."""
        while self._left:
            if len(self.buf) - self.pos == 0:
                self._fill(1)
            n = min(self._left, len(self.buf) - self.pos, READ)
            chunk = bytes(self.buf[self.pos:self.pos + n])
            self.pos += n
            self._left -= n
            yield chunk
        if self._pad:
            self._take(self._pad)
            self._pad = 0

    def _skip(self) -> None:
        for _ in self.content():
            pass

    def __iter__(self) -> Iterator[Member]:
        pax: dict[str, str] = {}
        long_name = long_link = None
        while True:
            self._skip()
            block = self._take(BLOCK)
            if block == bytes(BLOCK):
                return  # end of archive (the second zero block is not needed)
            stored = _num(block[148:156])
            if stored != sum(block[:148]) + 256 + sum(block[156:]):
                raise TarFormatError("header checksum mismatch")
            type_ = block[156:157]
            size = _num(block[124:136])
            if type_ in (b"x", b"g", b"L", b"K"):
                data = self._take(size + (-size % BLOCK))[:size]
                if type_ == b"x":
                    pax = _pax(data)
                elif type_ == b"L":
                    long_name = data.rstrip(b"\x00").decode("utf-8", "surrogateescape")
                elif type_ == b"K":
                    long_link = data.rstrip(b"\x00").decode("utf-8", "surrogateescape")
                continue
            if type_ == b"S":
                raise TarFormatError("GNU sparse members are not supported")
            name = _str(block[0:100])
            if block[257:262] == b"ustar" and block[345:500].strip(b"\x00"):
                name = _str(block[345:500]) + "/" + name
            m = Member(
                name=pax.get("path", long_name or name), type=type_,
                size=int(pax.get("size", size)), mode=_num(block[100:108]) & 0o7777,
                uid=int(pax.get("uid", _num(block[108:116]))), gid=int(pax.get("gid", _num(block[116:124]))),
                mtime=int(float(pax.get("mtime", _num(block[136:148])))),
                linkname=pax.get("linkpath", long_link or _str(block[157:257])),
                uname=pax.get("uname", _str(block[265:297])), gname=pax.get("gname", _str(block[297:329])),
            )
            pax, long_name, long_link = {}, None, None
            # Links, directories and special files carry no data, whatever their size field says.
            data_size = 0 if m.type in (b"1", b"2", b"3", b"4", b"5", b"6") else m.size
            self._left, self._pad = data_size, -data_size % BLOCK
            yield m
