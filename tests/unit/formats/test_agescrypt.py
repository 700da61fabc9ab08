"""age passphrase encryption, streaming: interoperable with pyrage both ways, and strict on damage."""

from __future__ import annotations

import io
import os

import pyrage
import pytest

from vigil.formats import agescrypt

PHRASE = "correct horse battery staple"
CHUNK = agescrypt.CHUNK


class _Collect(io.BytesIO):
    closed_by_writer = False

    def close(self) -> None:  # the writer closes its target; keep the bytes readable
        self.closed_by_writer = True

    def abort(self) -> None:
        raise AssertionError("not aborted")


def encrypt(data: bytes, passphrase: str = PHRASE, pieces: int = 3) -> bytes:
    out = _Collect()
    w = agescrypt.Writer(out, passphrase)
    step = max(1, len(data) // pieces)
    for i in range(0, len(data), step):  # written in several uneven pieces, as zstd hands them over
        w.write(data[i:i + step])
    w.close()
    assert out.closed_by_writer
    return out.getvalue()


def decrypt(blob: bytes, passphrase: str = PHRASE, read: int = 10_000) -> bytes:
    src = io.BytesIO(blob)
    reader = agescrypt.Reader(src, agescrypt.read_header(src, "t"), passphrase, "t")
    return b"".join(iter(lambda: reader.read(read), b""))


SIZES = [0, 1, CHUNK - 1, CHUNK, CHUNK + 1, 2 * CHUNK, 3 * CHUNK + 12345]


@pytest.mark.parametrize("size", SIZES)
def test_pyrage_decrypts_what_vigil_writes(size: int) -> None:
    data = os.urandom(size)
    blob = encrypt(data)
    assert blob.startswith(b"age-encryption.org/v1\n-> scrypt ")
    assert pyrage.passphrase.decrypt(blob, PHRASE) == data


@pytest.mark.parametrize("size", [0, CHUNK + 1, 2 * CHUNK])  # pyrage spends ~1 s of scrypt on each
def test_vigil_decrypts_what_pyrage_writes(size: int) -> None:
    data = os.urandom(size)
    assert decrypt(pyrage.passphrase.encrypt(data, PHRASE)) == data


def test_every_artifact_gets_its_own_salt_and_key() -> None:
    a, b = encrypt(b"same"), encrypt(b"same")
    assert a.split(b"\n")[1] != b.split(b"\n")[1]  # different scrypt salts
    assert a[-20:] != b[-20:]


def test_wrong_passphrase_is_named() -> None:
    with pytest.raises(agescrypt.AgeError, match="wrong passphrase"):
        decrypt(encrypt(b"secret"), "not it")


def test_flipped_payload_byte_fails_authentication() -> None:
    blob = bytearray(encrypt(os.urandom(3 * CHUNK)))
    blob[-CHUNK] ^= 1
    with pytest.raises(agescrypt.AgeError, match="fails authentication"):
        decrypt(bytes(blob))


@pytest.mark.parametrize("cut", [CHUNK + 16, 1])
def test_truncation_is_detected(cut: int) -> None:
    # Cut exactly at a chunk boundary (the earlier chunk is not marked last)
    # or one byte short: neither may pass as a complete stream.
    blob = encrypt(os.urandom(3 * CHUNK))
    with pytest.raises(agescrypt.AgeError, match="damaged or truncated|truncated"):
        decrypt(blob[:-cut])


def test_edited_header_is_refused() -> None:
    lines = encrypt(b"data").split(b"\n")
    # A second stanza next to the scrypt one: not a valid passphrase file.
    extra = b"\n".join(lines[:3] + [b"-> grease x", b""] + lines[3:])
    with pytest.raises(agescrypt.AgeError, match="damaged age header"):
        decrypt(extra)
    # A different MAC: the header was not written with this file key.
    mac = lines[3].split(b" ")[1]
    lines[3] = b"--- " + (b"A" if mac[:1] != b"A" else b"B") + mac[1:]
    with pytest.raises(agescrypt.AgeError, match="MAC mismatch"):
        decrypt(b"\n".join(lines))


def test_not_an_age_file() -> None:
    with pytest.raises(agescrypt.AgeError, match="not an age"):
        decrypt(b"\x28\xb5\x2f\xfd garbage")


def test_absurd_work_factor_is_refused_before_any_work() -> None:
    blob = encrypt(b"x")
    lines = blob.split(b"\n")
    salt = lines[1].split(b" ")[2]
    lines[1] = b"-> scrypt " + salt + b" 40"
    with pytest.raises(agescrypt.AgeError, match="work factor"):
        decrypt(b"\n".join(lines))
