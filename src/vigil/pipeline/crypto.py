"""age encryption of artifacts (SPEC §10), streaming.

To public keys (recipients) through pyrage: it encrypts and decrypts between
file objects while vigil's pipeline pushes chunks, so each direction runs
pyrage on a thread fed by an OS pipe. Only the public keys are needed to back
up; the identity is needed only to restore or deep-verify. To a passphrase
through `agescrypt` (pyrage cannot stream that). Either way the standard
`age` CLI decrypts every artifact:
`age -d -i key.txt files-app.tar.zst.age | zstd -d | tar -x`.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from typing import Any

from vigil.config.schema import Job
from vigil.config.secrets import read_secret
from vigil.errors import BackupError, ConfigError

SUFFIX = ".age"


def recipients(job: Job) -> list[Any]:
    import pyrage

    assert job.encryption is not None
    out = []
    for i, text in enumerate(job.encryption.recipients):
        try:
            out.append(pyrage.x25519.Recipient.from_str(text.strip()))
        except Exception:  # noqa: BLE001 - pyrage raises its own error types
            raise ConfigError(f"{job.config_path}: encryption.recipients[{i}]: not an age public key "
                              f"(age1...)") from None
    return out


def identities(job: Job) -> list[Any]:
    """The private keys from encryption.identity_file (age-keygen's format)."""
    import pyrage

    enc = job.encryption
    if enc is None or enc.identity_file is None:
        raise ConfigError(f"{job.config_path}: encryption.identity_file: required to read encrypted artifacts")
    try:
        lines = enc.identity_file.read_text().splitlines()
    except OSError as exc:
        raise ConfigError(f"{job.config_path}: encryption.identity_file: cannot read {enc.identity_file} "
                          f"({exc.strerror})") from None
    keys = []
    for line in lines:
        line = line.strip()
        if line and not line.startswith("#"):
            try:
                keys.append(pyrage.x25519.Identity.from_str(line))
            except Exception:  # noqa: BLE001
                raise ConfigError(f"{job.config_path}: encryption.identity_file: {enc.identity_file} holds "
                                  "something that is not an age identity") from None
    if not keys:
        raise ConfigError(f"{job.config_path}: encryption.identity_file: {enc.identity_file} holds no identity")
    return keys


def passphrase(job: Job) -> str:
    enc = job.encryption
    owner = f"{job.config_path}: encryption"
    if enc is None or not (enc.passphrase_env or enc.passphrase_file):
        raise ConfigError(f"{owner}.passphrase_env: a passphrase is needed to read passphrase-encrypted "
                          "artifacts (passphrase_env or passphrase_file)")
    value = read_secret(owner, "passphrase", None, enc.passphrase_env, enc.passphrase_file)
    if not value:
        raise ConfigError(f"{owner}.passphrase: the passphrase is empty")
    return value


def encryptor(job: Job) -> Callable[[Any], Any]:
    """target -> a write() target that age-encrypts into it; checks the keys now."""
    assert job.encryption is not None
    if job.encryption.recipients:
        keys = recipients(job)
        return lambda target: Encryptor(target, keys)
    from vigil.formats import agescrypt

    phrase = passphrase(job)
    return lambda target: agescrypt.Writer(target, phrase)


def decryptor(job: Job) -> Callable[[Any, str], Any]:
    """(stored stream, where) -> its plaintext, read()-able; keys are read only when needed."""
    from vigil.formats import agescrypt

    def open_(source: Any, where: str) -> Any:
        try:
            header = agescrypt.read_header(source, where)
            if header.is_scrypt:
                return _AgeErrors(agescrypt.Reader(source, header, passphrase(job), where))
        except agescrypt.AgeError as exc:
            raise BackupError(str(exc)) from None
        return Decryptor(_Replay(header.raw, source), identities(job), where)

    return open_


class _AgeErrors:
    """A passphrase stream's reader whose format errors are the run's errors."""

    def __init__(self, reader: Any) -> None:
        self._reader = reader

    def read(self, n: int = -1) -> bytes:
        from vigil.formats.agescrypt import AgeError

        try:
            return self._reader.read(n)  # type: ignore[no-any-return]
        except AgeError as exc:
            raise BackupError(str(exc)) from None

    def close(self) -> None:
        self._reader.close()


class _Replay:
    """`source` with bytes already read from it put back in front."""

    def __init__(self, prefix: bytes, source: Any) -> None:
        self._prefix = prefix
        self._source = source

    def read(self, n: int = -1) -> bytes:
        if not self._prefix:
            data: bytes = self._source.read(n)
            return data
        if n < 0 or n >= len(self._prefix):
            out, self._prefix = self._prefix, b""
        else:
            out, self._prefix = self._prefix[:n], self._prefix[n:]
        return out


class Encryptor:
    """A write() target that age-encrypts into `target` (a FanOut) on a thread."""

    def __init__(self, target: Any, recipients: list[Any]) -> None:
        self.target = target
        read_end, self._w = os.pipe()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, args=(read_end, recipients), name="vigil-age",
                                        daemon=True)
        self._thread.start()

    def _run(self, read_end: int, recipients: list[Any]) -> None:
        import pyrage

        try:
            with os.fdopen(read_end, "rb") as src:
                pyrage.encrypt_io(src, self.target, recipients)
        except BaseException as exc:  # noqa: BLE001 - raised on the producer's thread in close()
            self._error = exc

    def write(self, data: bytes | memoryview) -> int:
        view = memoryview(data)
        while view:
            view = view[os.write(self._w, view):]
        return len(data)

    def flush(self) -> None:
        pass

    def _end(self) -> None:
        if self._w is not None:
            os.close(self._w)
            self._w = None  # type: ignore[assignment]
        self._thread.join()

    def close(self) -> None:
        self._end()
        if self._error is not None:
            self.target.abort()
            raise BackupError(f"age encryption failed: {self._error}")
        self.target.close()

    def abort(self) -> None:
        self._end()
        self.target.abort()


class Decryptor:
    """A read()-able plaintext view of an age stream read from `source` on a thread."""

    def __init__(self, source: Any, identities: list[Any], where: str) -> None:
        self.where = where
        self._r, write_end = os.pipe()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, args=(source, write_end, identities),
                                        name="vigil-age-d", daemon=True)
        self._thread.start()

    def _run(self, source: Any, write_end: int, identities: list[Any]) -> None:
        import pyrage

        try:
            with os.fdopen(write_end, "wb") as out:
                pyrage.decrypt_io(source, out, identities)
        except BaseException as exc:  # noqa: BLE001 - reported to the reader at the end of the stream
            self._error = exc

    def read(self, n: int = -1) -> bytes:
        data = os.read(self._r, n if n > 0 else 1 << 20)
        if not data:
            self._thread.join()
            if self._error is not None:
                detail = "wrong key (no identity matches)" if "No matching keys" in str(self._error) \
                    else str(self._error)
                raise BackupError(f"{self.where}: cannot decrypt: {detail}")
        return data

    def close(self) -> None:
        os.close(self._r)
        self._thread.join()
