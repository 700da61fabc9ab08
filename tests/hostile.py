"""Building backups by hand, byte by byte: what a hostile or broken destination hands back."""

from __future__ import annotations

import hashlib
import json
import tarfile
from pathlib import Path

import zstandard

BACKUP_ID = "20260101T000000Z-abcdef"
STARTED = "2026-01-01T00:00:00.000Z"


def pax_records(records: dict[str, str]) -> bytes:
    """A pax extended header's data: "LENGTH KEY=VALUE\\n", LENGTH counting itself."""
    out = b""
    for key, value in records.items():
        body = f" {key}={value}\n".encode("utf-8", "surrogateescape")
        length = len(body) + 1
        while len(str(length).encode()) + len(body) != length:
            length += 1
        out += str(length).encode() + body
    return out


def _pad(data: bytes) -> bytes:
    return data + bytes(-len(data) % 512)


def raw_member(name: str, data: bytes = b"", type_: bytes = tarfile.REGTYPE, pax: dict[str, str] | None = None,
               **fields: object) -> bytes:
    """One member's blocks; `pax` records go into an extended header before it, unchecked."""
    out = b""
    if pax:
        body = pax_records(pax)
        head = tarfile.TarInfo("PaxHeader/x")
        head.type, head.size = tarfile.XHDTYPE, len(body)
        out += head.tobuf(tarfile.USTAR_FORMAT) + _pad(body)
    info = tarfile.TarInfo(name)
    info.type, info.mtime, info.mode = type_, 1700000000, 0o644
    for key, value in fields.items():
        setattr(info, key, value)
    if type_ in tarfile.REGULAR_TYPES:
        info.size = len(data)
    else:
        data = b""
    return out + info.tobuf(tarfile.USTAR_FORMAT) + _pad(data)


def archive(*members: bytes) -> bytes:
    return b"".join(members) + bytes(1024)


def index_line(path: str, data: bytes | None = None, kind: str = "file") -> dict:
    entry = {"path": path, "type": kind, "size": len(data or b""), "mode": 0o644, "mtime": 1700000000}
    if kind == "file":
        entry["sha256"] = hashlib.sha256(data or b"").hexdigest()
    return entry


def index_bytes(entries: list[dict]) -> bytes:
    return b"".join(json.dumps(e).encode() + b"\n" for e in entries)


GOOD_FILES = {"a.txt": b"hello\n", "b/c.txt": b"inside b\n"}


def good_archive() -> tuple[bytes, bytes]:
    """An intact archive and its index."""
    tar = archive(raw_member("a.txt", GOOD_FILES["a.txt"]), raw_member("b/", type_=tarfile.DIRTYPE, mode=0o755),
                  raw_member("b/c.txt", GOOD_FILES["b/c.txt"]))
    index = index_bytes([index_line("a.txt", GOOD_FILES["a.txt"]), index_line("b", kind="dir"),
                         index_line("b/c.txt", GOOD_FILES["b/c.txt"])])
    return tar, index


def write_backup(dest: Path, tar: bytes, index: bytes, job: str = "app", backup_id: str = BACKUP_ID,
                 manifest: dict | None = None) -> Path:
    """A committed backup holding exactly these bytes, its manifest consistent with them
    (a destination that lies coherently) unless `manifest` replaces keys of it."""
    d = dest / job / backup_id
    d.mkdir(parents=True)
    arts = []
    for name, typ, raw in (("files-app.tar.zst", "files", tar), ("index-app.jsonl.zst", "index", index)):
        data = zstandard.compress(raw)
        (d / name).write_bytes(data)
        arts.append({"name": name, "source": "app", "type": typ, "size": len(data),
                     "sha256": hashlib.sha256(data).hexdigest(), "compression": "zstd"})
    doc = {"format": 1, "id": backup_id, "job": job, "host": "h", "vigil_version": "0",
           "started_at": STARTED, "finished_at": STARTED, "artifacts": arts, "warnings": []}
    doc.update(manifest or {})
    (d / "manifest.json").write_text(json.dumps(doc))
    return d
