"""A streaming reader for POSIX pax / ustar archives, for verify and restore.

tarfile's stream mode spends most of its time shuffling 10 KiB buffers and
unpacking header checksums byte by byte; this reader takes large reads from
the decompressor, parses ustar headers with slicing, applies pax extended
headers (and GNU long names), and hands out member contents in big chunks.
It reads what vigil writes and what GNU tar and bsdtar write in pax/ustar/
gnu formats; sparse members are refused.
"""

from __future__ import annotations

import re
import struct
from collections.abc import Iterator
from typing import Any
from zlib import adler32

BLOCK = 512
READ = 1 << 20
MAX_META = 1 << 20  # a pax header or GNU long name larger than this is not a real one
REGTYPES = (b"0", b"\x00", b"7")
# What a restore can hand to chown and utime: ids below (uid_t)-1, which means
# "leave as is", and times from year 1 to 9999.
MAX_ID = (1 << 32) - 1
MIN_TIME, MAX_TIME = -62135596800, 253402300799
_DECIMAL = re.compile(r"-?[0-9]{1,30}")
_PAX_TIME = re.compile(r"(-?[0-9]{1,30})(?:\.[0-9]*)?")
_PAX_LENGTH = re.compile(rb"[0-9]{1,9} ")


class TarFormatError(ValueError):
    """The archive is not a well-formed tar: every malformed input ends here.
    Its readers (verify, restore) report it as a damaged artifact."""


class Member:
    """One archive entry. Name, type and size are parsed with the header; the
    other fields when first read (a deep verify never reads them), from the pax
    header where it has them."""

    __slots__ = ("name", "type", "size", "_fields", "_pax", "_long_link")

    def __init__(self, name: str, type_: bytes, size: int, fields: tuple[Any, ...],
                 pax: dict[str, str], long_link: str | None) -> None:
        self.name, self.type, self.size = name, type_, size
        self._fields, self._pax, self._long_link = fields, pax, long_link

    @property
    def mode(self) -> int:
        return _num(self._fields[1]) & 0o7777

    @property
    def uid(self) -> int:
        return self._ranged("uid", 2, 0, MAX_ID - 1)

    @property
    def gid(self) -> int:
        return self._ranged("gid", 3, 0, MAX_ID - 1)

    @property
    def mtime(self) -> int:
        return self._ranged("mtime", 5, MIN_TIME, MAX_TIME)

    def _ranged(self, key: str, field: int, low: int, high: int) -> int:
        # Parsed when first read; a value no system call takes is damage, said as such.
        if key in self._pax:
            match = (_PAX_TIME if key == "mtime" else _DECIMAL).fullmatch(self._pax[key])
            if match is None:
                raise TarFormatError(f"{self.name!r}: pax {key} {self._pax[key][:40]!r} is not a number")
            value = int(match.group(1) if key == "mtime" else match.group())
        else:
            value = _num(self._fields[field])
        if not low <= value <= high:
            raise TarFormatError(f"{self.name!r}: {key} {value} is out of range")
        return value

    @property
    def linkname(self) -> str:
        link = self._pax.get("linkpath", self._long_link or _str(self._fields[8]))
        if "\x00" in link:
            raise TarFormatError(f"{self.name!r}: NUL byte in the link target")
        return link

    @property
    def uname(self) -> str:
        return self._pax.get("uname", _str(self._fields[11]))

    @property
    def gname(self) -> str:
        return self._pax.get("gname", _str(self._fields[12]))

    def check(self) -> None:
        """Parse the fields a restore applies: TarFormatError if one holds what no file can have."""
        _ = (self.mode, self.uid, self.gid, self.mtime, self.linkname)  # each property checks its field

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


_HEADER = struct.Struct("100s8s8s8s12s12s8sc100s6s2s32s32s8s8s155s")
_ZERO = bytes(BLOCK)
_NO_PREFIX = bytes(155)
_NO_DATA = (b"1", b"2", b"3", b"4", b"5", b"6")
_NO_PAX: dict[str, str] = {}  # shared by members without a pax header; never written to


def _num(field: bytes) -> int:
    try:
        return int(field.rstrip(b"\x00"), 8)  # the common case; int() skips the spaces itself
    except ValueError:
        pass
    if field[:1] in (b"\x80", b"\xff"):  # GNU base-256, for values octal cannot hold
        value = int.from_bytes(field[1:], "big")
        return value - (1 << (8 * (len(field) - 1))) if field[0] == 0xFF else value
    text = field.partition(b"\x00")[0].strip()
    try:
        return int(text, 8) if text else 0
    except ValueError:
        raise TarFormatError(f"header field {field!r} is not an octal number") from None


def _str(field: bytes) -> str:
    return field.partition(b"\x00")[0].decode("utf-8", "surrogateescape")


def _pax(data: bytes) -> dict[str, str]:
    """Records of "LENGTH KEY=VALUE\\n", LENGTH counting the whole record."""
    out, pos = {}, 0
    while pos < len(data) and data[pos]:  # NUL padding after the last record ends it
        head = _PAX_LENGTH.match(data, pos)
        end = pos + int(head.group()) if head else 0
        if head is None or not head.end() < end <= len(data) or data[end - 1] != 0x0A:
            raise TarFormatError(f"malformed pax header record at byte {pos}")
        key, eq, value = data[head.end():end - 1].partition(b"=")
        if not eq or not key:
            raise TarFormatError(f"malformed pax header record at byte {pos}")
        out[key.decode("utf-8", "surrogateescape")] = value.decode("utf-8", "surrogateescape")
        pos = end
    return out


class TarStream:
    """Iterate members; read (or skip) each member's content before the next.

    The buffer is an immutable bytes object: member contents are handed out
    as memoryviews of it, so the bytes from the decompressor are never copied
    on their way to the hash or the file."""

    def __init__(self, fileobj: Any) -> None:
        self.f = fileobj
        self.buf = b""
        self.pos = 0
        self._left = 0  # content bytes of the current member not yet consumed
        self._pad = 0

    def _next_read(self) -> bytes:
        chunk: bytes = self.f.read(READ)
        if not chunk:
            raise TarFormatError("unexpected end of archive")
        return chunk

    def _take(self, n: int) -> bytes:
        end = self.pos + n
        if end <= len(self.buf):
            out = self.buf[self.pos:end]
            self.pos = end
            return out
        # Straddles reads: join the pieces, keep the last read as the buffer.
        parts = [self.buf[self.pos:]]
        need = n - len(parts[0])
        while need:
            self.buf = self._next_read()
            self.pos = min(need, len(self.buf))
            parts.append(self.buf[:self.pos])
            need -= self.pos
        return b"".join(parts)

    def content(self) -> Iterator[memoryview]:
        """The current member's content, in views of up to READ bytes, valid until the next step."""
        while self._left:
            if self.pos == len(self.buf):
                self.buf, self.pos = self._next_read(), 0
            n = min(self._left, len(self.buf) - self.pos)
            chunk = memoryview(self.buf)[self.pos:self.pos + n]
            self.pos += n
            self._left -= n
            yield chunk
        if self._pad:
            self._take(self._pad)
            self._pad = 0

    def _skip(self) -> None:
        n, self._left, self._pad = self._left + self._pad, 0, 0
        while n:
            if self.pos == len(self.buf):
                self.buf, self.pos = self._next_read(), 0
            step = min(n, len(self.buf) - self.pos)
            self.pos += step
            n -= step

    def __iter__(self) -> Iterator[Member]:
        pax = _NO_PAX
        long_name = long_link = None
        while True:
            if self._left or self._pad:
                self._skip()
            block = self._take(BLOCK)
            if block == _ZERO:
                return  # end of archive (the second zero block is not needed)
            fields = _HEADER.unpack_from(block)
            name_f, size_f, chk_f, type_, magic, prefix_f = (fields[0], fields[4], fields[6], fields[7],
                                                             fields[9], fields[15])
            # The checksum is the header's byte sum with its own field counted as spaces.
            # Compared modulo 65521 (Adler-32's low half is 1 + byte sum, mod 65521): ten times
            # faster than sum(), and the artifact's SHA-256 guards the bytes anyway.
            if ((adler32(block) & 0xFFFF) - 1 - sum(chk_f) + 256 - _num(chk_f)) % 65521:
                raise TarFormatError("header checksum mismatch")
            size = _num(size_f)
            if size < 0:
                raise TarFormatError(f"negative member size {size}")
            if type_ in (b"x", b"g", b"L", b"K"):
                if size > MAX_META:
                    raise TarFormatError(f"{size}-byte extended header: refusing to hold it in memory")
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
            name = _str(name_f)
            if prefix_f != _NO_PREFIX and magic[:5] == b"ustar":
                name = _str(prefix_f) + "/" + name
            if pax:
                name = pax.get("path", long_name or name)
                if "size" in pax:
                    if not _DECIMAL.fullmatch(pax["size"]) or pax["size"][0] == "-":
                        raise TarFormatError(f"{name[:200]!r}: pax size {pax['size'][:40]!r} is not a size")
                    size = int(pax["size"])
            elif long_name:
                name = long_name
            if "\x00" in name:
                raise TarFormatError(f"NUL byte in member name {name[:200]!r}")
            m = Member(name, type_, size, fields, pax, long_link)
            pax = _NO_PAX
            long_name = long_link = None
            # Links, directories and special files carry no data, whatever their size field says.
            data_size = 0 if type_ in _NO_DATA else size
            self._left, self._pad = data_size, -data_size % BLOCK
            yield m
