"""age's passphrase recipient (scrypt), streaming in both directions.

pyrage encrypts to a passphrase only from and to whole in-memory buffers; an
artifact can be far larger than memory, so vigil writes and reads this one
recipient type of the age v1 format (https://age-encryption.org/v1) itself,
on top of `cryptography`'s ChaCha20-Poly1305 and HKDF and stdlib scrypt:

    age-encryption.org/v1
    -> scrypt SALT LOG2_N            salt: 16 random bytes, base64 without padding
    WRAPPED_FILE_KEY                 ChaCha20-Poly1305(scrypt(passphrase), zero nonce, file key)
    --- HEADER_MAC                   HMAC-SHA-256(HKDF(file key, "header"), header up to "---")
    NONCE (16 bytes) CHUNKS...       ChaCha20-Poly1305(HKDF(file key, nonce, "payload")) per
                                     64 KiB chunk; nonce = 11-byte counter + 1 byte "last chunk"

Every artifact gets its own file key and salt (the format requires it), so
each costs one scrypt: 2^LOG_N * 1 KiB of memory and ~0.3 s here. The standard
`age -d` and pyrage decrypt what this writes, and this reads what they write.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
from dataclasses import dataclass
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from cryptography.hazmat.primitives.kdf.hkdf import HKDF


class AgeError(Exception):
    """A stream that is not age, is damaged, or does not open with the passphrase;
    the pipeline reports it as the artifact's error."""


VERSION = b"age-encryption.org/v1"
SCRYPT_LABEL = b"age-encryption.org/v1/scrypt"
CHUNK = 64 << 10
TAG = 16
# age's CLI picks ~1 s of work; a backup run derives one key per artifact, so
# vigil stays at 2^16 (64 MiB). The passphrase's length is what resists an
# offline guesser: use a long random one.
LOG_N = 16
MAX_LOG_N = 22  # refuse headers that would make us spend 4+ GiB
MAX_HEADER = 64 << 10
_ZERO_NONCE = bytes(12)


def _b64(data: bytes) -> bytes:
    return base64.b64encode(data).rstrip(b"=")


def _unb64(text: bytes) -> bytes:
    """Strict unpadded base64, as the age format demands."""
    data = base64.b64decode(text + b"=" * (-len(text) % 4), validate=True)
    if _b64(data) != text:
        raise ValueError("non-canonical base64")
    return data


def _hkdf(key: bytes, salt: bytes, info: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=salt, info=info).derive(key)


def _scrypt(passphrase: bytes, salt: bytes, log_n: int) -> bytes:
    return hashlib.scrypt(passphrase, salt=SCRYPT_LABEL + salt, n=1 << log_n, r=8, p=1, dklen=32,
                          maxmem=(1 << log_n) * 1024 + (32 << 20))


def _header_mac(file_key: bytes, header: bytes) -> bytes:
    return hmac.new(_hkdf(file_key, b"", b"header"), header, hashlib.sha256).digest()


def _chunk_nonce(counter: int, last: bool) -> bytes:
    return counter.to_bytes(11, "big") + (b"\x01" if last else b"\x00")


class Writer:
    """A write() target that age-encrypts to a passphrase into `target`."""

    def __init__(self, target: Any, passphrase: str, log_n: int = LOG_N) -> None:
        self.target = target
        file_key, salt, nonce = os.urandom(16), os.urandom(16), os.urandom(16)
        wrapped = ChaCha20Poly1305(_scrypt(passphrase.encode(), salt, log_n)).encrypt(_ZERO_NONCE, file_key, None)
        # The wrapped key is 32 bytes: one body line of 43 characters (< 64 ends the body).
        header = b"%s\n-> scrypt %s %d\n%s\n---" % (VERSION, _b64(salt), log_n, _b64(wrapped))
        target.write(header + b" " + _b64(_header_mac(file_key, header)) + b"\n" + nonce)
        self._aead = ChaCha20Poly1305(_hkdf(file_key, nonce, b"payload"))
        self._buf = bytearray()
        self._counter = 0

    def write(self, data: bytes | memoryview) -> int:
        self._buf += data
        # Hold back the last (possibly full) chunk: only close() knows it is the last.
        if len(self._buf) > CHUNK:
            whole = (len(self._buf) - 1) // CHUNK * CHUNK
            view = memoryview(self._buf)
            sealed = [self._seal(view[i:i + CHUNK], False) for i in range(0, whole, CHUNK)]
            view.release()
            del self._buf[:whole]
            self.target.write(b"".join(sealed))
        return len(data)

    def _seal(self, chunk: Any, last: bool) -> bytes:
        out = self._aead.encrypt(_chunk_nonce(self._counter, last), bytes(chunk), None)
        self._counter += 1
        return out

    def flush(self) -> None:
        pass

    def close(self) -> None:
        self.target.write(self._seal(self._buf, True))
        self._buf = bytearray()
        self.target.close()

    def abort(self) -> None:
        self.target.abort()


@dataclass
class Header:
    """The parsed text header of an age file, and its bytes as read."""

    raw: bytes
    stanzas: list[tuple[list[bytes], bytes]]
    mac: bytes

    @property
    def is_scrypt(self) -> bool:
        return any(args[0] == b"scrypt" for args, _ in self.stanzas)


def read_header(source: Any, where: str) -> Header:
    """Read and parse the header from `source` (exactly up to the payload)."""
    raw = bytearray()

    def line() -> bytes:
        out = bytearray()
        while not out.endswith(b"\n"):
            b = source.read(1)
            if not b:
                raise AgeError(f"{where}: not an age file (header ends early)")
            out += b
            if len(raw) + len(out) > MAX_HEADER:
                raise AgeError(f"{where}: not an age file (header too long)")
        raw.extend(out)
        return bytes(out[:-1])

    if line() != VERSION:
        raise AgeError(f"{where}: not an age v1 file")
    stanzas: list[tuple[list[bytes], bytes]] = []
    text = line()
    while text.startswith(b"-> "):
        args = text[3:].split(b" ")
        body = bytearray()
        while True:
            part = line()
            body += part
            if len(part) < 64:
                break
        stanzas.append((args, bytes(body)))
        text = line()
    if not text.startswith(b"--- "):
        raise AgeError(f"{where}: not an age file (malformed header)")
    try:
        mac = _unb64(text[4:])
    except ValueError:
        raise AgeError(f"{where}: not an age file (malformed header MAC)") from None
    return Header(bytes(raw), stanzas, mac)


def file_key(header: Header, passphrase: str, where: str) -> bytes:
    """Unwrap the file key with the passphrase and check the header's MAC."""
    if len(header.stanzas) != 1:
        raise AgeError(f"{where}: damaged age header (a passphrase must be its only recipient)")
    args, body = header.stanzas[0]
    try:
        if len(args) != 3:
            raise ValueError
        salt, log_n = _unb64(args[1]), int(args[2])
        wrapped = _unb64(body)
        if len(salt) != 16 or not 1 <= log_n or args[2] != str(log_n).encode() or len(wrapped) != 32:
            raise ValueError
    except ValueError:
        raise AgeError(f"{where}: damaged age header (bad scrypt stanza)") from None
    if log_n > MAX_LOG_N:
        raise AgeError(f"{where}: scrypt work factor 2^{log_n} is beyond vigil's limit 2^{MAX_LOG_N}")
    try:
        key = ChaCha20Poly1305(_scrypt(passphrase.encode(), salt, log_n)).decrypt(_ZERO_NONCE, wrapped, None)
    except InvalidTag:
        raise AgeError(f"{where}: cannot decrypt: wrong passphrase") from None
    mac_input = header.raw[:header.raw.rindex(b"\n---") + 4]
    if not hmac.compare_digest(_header_mac(key, mac_input), header.mac):
        raise AgeError(f"{where}: cannot decrypt: the age header is damaged (MAC mismatch)")
    return key


class Reader:
    """A read()-able plaintext view of a passphrase-encrypted age stream."""

    def __init__(self, source: Any, header: Header, passphrase: str, where: str) -> None:
        self.where = where
        self._source = source
        key = file_key(header, passphrase, where)
        nonce = self._read_exactly(16)
        if len(nonce) != 16:
            raise AgeError(f"{where}: cannot decrypt: truncated (no payload)")
        self._aead = ChaCha20Poly1305(_hkdf(key, nonce, b"payload"))
        self._pending = b""  # ciphertext read ahead: one byte more than a chunk tells "not last"
        self._plain = memoryview(b"")
        self._counter = 0
        self._done = False

    def _read_exactly(self, n: int) -> bytes:
        parts, got = [], 0
        while got < n:
            data = self._source.read(n - got)
            if not data:
                break
            parts.append(data)
            got += len(data)
        return b"".join(parts)

    def _next_chunk(self) -> bytes:
        self._pending += self._read_exactly(CHUNK + TAG + 1 - len(self._pending))
        last = len(self._pending) <= CHUNK + TAG
        sealed = self._pending[:CHUNK + TAG]
        self._pending = self._pending[CHUNK + TAG:]
        if len(sealed) < TAG or (last and len(sealed) == TAG and self._counter > 0):
            raise AgeError(f"{self.where}: cannot decrypt: truncated at chunk {self._counter}")
        try:
            plain = self._aead.decrypt(_chunk_nonce(self._counter, last), sealed, None)
        except InvalidTag:
            raise AgeError(f"{self.where}: cannot decrypt: damaged or truncated "
                              f"(chunk {self._counter} fails authentication)") from None
        self._counter += 1
        self._done = last
        return plain

    def read(self, n: int = -1) -> bytes:
        while not self._plain and not self._done:
            self._plain = memoryview(self._next_chunk())
        if n < 0 or n >= len(self._plain):
            out, self._plain = bytes(self._plain), memoryview(b"")
            return out
        out, self._plain = bytes(self._plain[:n]), self._plain[n:]
        return out

    def close(self) -> None:
        pass
