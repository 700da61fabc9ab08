"""vigil's streaming tar reader reads what tarfile and GNU tar write."""

from __future__ import annotations

import io
import os
import re
import subprocess
import tarfile

import pytest
from hostile import archive, raw_member
from hypothesis import given, settings
from hypothesis import strategies as st

from vigil.formats.tarreader import TarFormatError, TarStream


class Trickle(io.BytesIO):
    """Hands out at most `step` bytes per read: headers and contents straddle reads."""

    def __init__(self, data: bytes, step: int) -> None:
        super().__init__(data)
        self.step = step

    def read(self, n: int = -1) -> bytes:
        return super().read(min(self.step, n if n >= 0 else self.step))


def members_of(data: bytes, step: int | None = None, read_content: bool = True) -> list[tuple]:
    out = []
    tar = TarStream(Trickle(data, step) if step else io.BytesIO(data))
    for m in tar:
        content = b"".join(tar.content()) if read_content else None
        out.append((m.name.rstrip("/"), m.type, m.mode, m.mtime, m.linkname, m.uid, content))
    return out


@pytest.mark.parametrize("step", [None, 7, 1000])
@pytest.mark.parametrize("fmt", [tarfile.PAX_FORMAT, tarfile.GNU_FORMAT, tarfile.USTAR_FORMAT])
def test_reads_what_tarfile_writes(fmt: int, step: int | None) -> None:
    long = "d" * 90 + "/" + "f" * 90 if fmt != tarfile.USTAR_FORMAT else "d" * 90 + "/f.txt"
    entries = [("a.txt", b"hello", {}), (long, b"x" * 70000, {}), ("dir", None, {"type": tarfile.DIRTYPE}),
               ("ln", None, {"type": tarfile.SYMTYPE, "linkname": "a.txt"}),
               ("hard", None, {"type": tarfile.LNKTYPE, "linkname": "a.txt"})]
    if fmt == tarfile.PAX_FORMAT:
        entries += [("ünï/名前.txt", b"u", {}), ("old", b"o", {"mtime": -86400}), ("bigid", b"b", {"uid": 10**9})]
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=fmt) as tar:
        for name, data, kw in entries:
            info = tarfile.TarInfo(name)
            info.mtime, info.mode = kw.pop("mtime", 1700000000), 0o640
            for k, v in kw.items():
                setattr(info, k, v)
            if data is not None:
                info.size = len(data)
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    got = {m[0]: m for m in members_of(buf.getvalue(), step)}
    assert set(got) == {n for n, _, _ in entries}
    # Skipping contents unread lands on the same members.
    assert [m[:6] for m in members_of(buf.getvalue(), step, read_content=False)] == \
        [m[:6] for m in members_of(buf.getvalue(), step)]
    for name, data, _ in entries:
        assert got[name][6] == (data or b"")
        assert got[name][2] == 0o640
    assert got["ln"][4] == "a.txt" and got["hard"][4] == "a.txt"
    if fmt == tarfile.PAX_FORMAT:
        assert got["old"][3] == -86400 and got["bigid"][5] == 10**9


def test_reads_gnu_tar_output(tmp_path) -> None:
    src = tmp_path / "src"
    (src / ("x" * 150)).mkdir(parents=True)
    (src / ("x" * 150) / "file.bin").write_bytes(os.urandom(5000))
    os.symlink("/etc/hostname", src / "abs")
    for fmt in ("gnu", "pax", "ustar"):
        if fmt == "ustar":
            continue  # names over 100+155 bytes do not fit ustar at all
        data = subprocess.run(["tar", f"--format={fmt}", "-cf", "-", "-C", str(src), "."], capture_output=True,
                              check=True).stdout
        names = {m[0].lstrip("./") for m in members_of(data)}
        assert {"x" * 150, "x" * 150 + "/file.bin", "abs"} <= names, fmt


def test_damaged_header_and_truncation_are_errors() -> None:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        info = tarfile.TarInfo("a")
        info.size = 3
        tar.addfile(info, io.BytesIO(b"abc"))
    data = bytearray(buf.getvalue())
    data[10] ^= 1
    with pytest.raises(TarFormatError, match="checksum"):
        members_of(bytes(data))
    with pytest.raises(TarFormatError, match="end of archive"):
        members_of(buf.getvalue()[:520])


def test_absurd_extended_header_is_refused_not_buffered() -> None:
    # A hostile archive announcing an 8 GiB pax header must fail at once,
    # not make the reader try to hold it in memory.
    info = tarfile.TarInfo("x")
    block = bytearray(info.tobuf(tarfile.USTAR_FORMAT))
    block[156:157] = b"x"
    block[124:136] = b"%011o\x00" % (8**11 - 1)
    block[148:156] = b"        "
    block[148:155] = b"%06o\x00" % sum(block)
    with pytest.raises(TarFormatError, match="extended header"):
        list(TarStream(io.BytesIO(bytes(block) + bytes(1024))))


@pytest.mark.parametrize("field, value", [
    (b"0000644\x00", 0o644), (b"00000001750 ", 1000), (b"  644 \x00", 0o644), (b"644\x00\x00\x00\x00\x00", 0o644),
    (b"\x00" * 8, 0), (b" " * 7 + b"\x00", 0),
    (b"\x80" + (10**10).to_bytes(11, "big"), 10**10),  # GNU base-256: larger than octal can hold
    (b"\xff" * 11 + b"\xfe", -2),  # GNU base-256, negative (a date before 1970)
])
def test_numeric_header_fields(field: bytes, value: int) -> None:
    from vigil.formats.tarreader import _num

    assert _num(field) == value


def _read_everything(data: bytes) -> None:
    """What verify and restore read of each member: names, contents, and the metadata a restore applies."""
    tar = TarStream(io.BytesIO(data))
    for m in tar:
        b"".join(tar.content())
        _ = (m.mode, m.uid, m.gid, m.mtime, m.linkname, m.uname, m.gname)


@pytest.mark.parametrize("member, says", [
    (raw_member("a", b"x", pax={"size": "abc"}), "pax size 'abc' is not a size"),
    (raw_member("a", b"x", pax={"size": "-5"}), "pax size '-5' is not a size"),
    (raw_member("a", b"x", pax={"mtime": "nan"}), "pax mtime 'nan' is not a number"),
    (raw_member("a", b"x", pax={"mtime": "1e300"}), "pax mtime '1e300' is not a number"),
    (raw_member("a", b"x", pax={"mtime": "9" * 25}), "mtime 9999999999999999999999999 is out of range"),
    (raw_member("a", b"x", pax={"uid": "-1"}), "uid -1 is out of range"),
    (raw_member("a", b"x", pax={"gid": "4294967295"}), "gid 4294967295 is out of range"),
    (raw_member("a", b"x", pax={"gid": "١٢"}), "pax gid '١٢' is not a number"),
    (raw_member("a", b"x", pax={"path": "a\x00b"}), "NUL byte in member name"),
    (raw_member("l", type_=tarfile.SYMTYPE, pax={"linkpath": "a\x00b"}), "NUL byte in the link target"),
])
def test_malformed_pax_values_are_format_errors(member: bytes, says: str) -> None:
    with pytest.raises(TarFormatError, match=re.escape(says)):
        _read_everything(archive(member))


@pytest.mark.parametrize("records", [b"0 \n", b"5 a=b\n", b"6 a=b", b"x a=b\n", b"06 =b\n", b"99 a=b\n", b"3 a\n"])
def test_malformed_pax_records_are_format_errors_not_hangs(records: bytes) -> None:
    head = tarfile.TarInfo("PaxHeader/x")
    head.type, head.size = tarfile.XHDTYPE, len(records)
    data = head.tobuf(tarfile.USTAR_FORMAT) + records + bytes(-len(records) % 512) + raw_member("a", b"x")
    with pytest.raises(TarFormatError, match="malformed pax header record"):
        _read_everything(archive(data))


def test_a_garbage_checksum_field_or_negative_size_is_a_format_error() -> None:
    block = bytearray(raw_member("a", b"x"))
    block[148:156] = b"12z4567\x00"
    with pytest.raises(TarFormatError, match="not an octal number"):
        _read_everything(archive(bytes(block)))
    block = bytearray(tarfile.TarInfo("a").tobuf(tarfile.USTAR_FORMAT))
    block[124:136] = b"\xff" * 12  # GNU base-256: -1
    block[148:156] = b"        "
    block[148:155] = b"%06o\x00" % sum(block)
    with pytest.raises(TarFormatError, match="negative member size"):
        _read_everything(archive(bytes(block)))


@settings(max_examples=300, deadline=None, derandomize=True)
@given(st.binary(max_size=3000), st.integers(0, 3000), st.binary(min_size=1, max_size=16))
def test_any_bytes_read_as_members_or_a_format_error(noise: bytes, at: int, patch: bytes) -> None:
    base = archive(raw_member("a.txt", b"hello", pax={"path": "ü/a.txt", "mtime": "1.5"}),
                   raw_member("d/", type_=tarfile.DIRTYPE), raw_member("l", type_=tarfile.LNKTYPE, linkname="a.txt"))
    for data in (noise, base[:at] + patch + base[at + len(patch):]):
        try:
            _read_everything(data)
        except TarFormatError:
            pass
