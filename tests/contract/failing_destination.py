"""A destination that fails on purpose at one point of a backup, to show that
the fan-out (BackupSet) drops only it and the others still commit."""

from __future__ import annotations

from collections.abc import Iterator

from memory_destination import MemoryDestination, _Sink, _Writer

# Where it fails. "read_back_oserror" raises a bare OSError, the one error a
# destination outside this contract is still most likely to let through.
POINTS = ("open", "write", "close", "read_back", "read_back_oserror", "commit")


class _FailingSink(_Sink):
    def write(self, data: bytes | memoryview) -> None:
        if self.dest.fail_at == "write" and self.backup.files[self.name]:  # after the first bytes
            raise self.dest.fail(f"cannot write {self.name}: the disk went away")
        super().write(data)

    def close(self) -> None:
        if self.dest.fail_at == "close":
            raise self.dest.fail(f"cannot finish {self.name}: the upload was refused")
        super().close()


class _FailingWriter(_Writer):
    sink_class = _FailingSink
    dest: FailingDestination

    def open(self, name: str) -> _Sink:
        if self.dest.fail_at == "open":
            raise self.dest.fail(f"cannot create {name}")
        return super().open(name)

    def read_back(self, name: str) -> Iterator[bytes]:
        chunks = super().read_back(name)
        if self.dest.fail_at.startswith("read_back"):
            yield next(chunks, b"")  # fails mid-way, after the first bytes came back
            if self.dest.fail_at == "read_back_oserror":
                raise OSError(5, "Input/output error", name)
            raise self.dest.fail(f"cannot read back {name}: the store answers 403")
        yield from chunks

    def commit(self, manifest: bytes) -> None:
        if self.dest.fail_at == "commit":
            raise self.dest.fail("cannot write the manifest")
        super().commit(manifest)


class FailingDestination(MemoryDestination):
    type = "failing"
    writer_class = _FailingWriter

    def __init__(self, fail_at: str, name: str = "failing") -> None:
        assert fail_at in POINTS, fail_at
        super().__init__(name)
        self.fail_at = fail_at

