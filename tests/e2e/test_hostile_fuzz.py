"""Mutated archives, indexes and manifests through verify --deep and restore, in-process.

Whatever a destination hands back, the outcome is vigil's own error or success:
no other exception, nothing written outside the restore target, no hang.
`make fuzz` runs many more examples (VIGIL_FUZZ_EXAMPLES) with fresh seeds;
the normal suite runs a fixed, smaller set.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import signal
import tarfile
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import zstandard
from hostile import BACKUP_ID, archive, index_bytes, index_line, raw_member
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from vigil.actions.restore import restore
from vigil.actions.verify import Verifier
from vigil.config.load import load_config
from vigil.errors import VigilError

EXAMPLES = int(os.environ.get("VIGIL_FUZZ_EXAMPLES", "150"))
FUZZING = "VIGIL_FUZZ_EXAMPLES" in os.environ
HANG_SECONDS = 30
LOG = logging.getLogger("vigil-fuzz")

FUZZ = settings(max_examples=EXAMPLES, derandomize=not FUZZING, deadline=None, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                       HealthCheck.large_base_example])


# --- what a destination may hand back ---------------------------------------------------

_PLAIN = st.sampled_from(["a", "a.txt", "b/c.txt", "b", "b/", "d" * 120 + "/f", "\udcff", "x/./y", "link/inside",
                          "link", "b/link", "f"])
_ODD = st.sampled_from(["..", "../x", "/abs", "./a", "a/../../x", "", "a\x00b", "../outside/victim",
                        "link/../../outside"])
NAMES = st.one_of(_PLAIN, _PLAIN, _ODD, st.text(min_size=0, max_size=12))  # mostly names a restore writes
NUMBERS = st.one_of(
    st.sampled_from(["abc", "nan", "inf", "-inf", "1e300", "-1", "0", "1.5", "99999999999999999999999",
                     "4294967295", "", " 1", "0x10", "١٢"]),
    st.integers(-(2**70), 2**70).map(str),
)
PAX_KEYS = st.sampled_from(["path", "linkpath", "size", "mtime", "uid", "gid", "uname", "gname",
                            "hdrcharset", "atime", "GNU.sparse.size", "comment"])
TYPES = st.sampled_from([tarfile.REGTYPE, tarfile.AREGTYPE, tarfile.DIRTYPE, tarfile.SYMTYPE, tarfile.LNKTYPE,
                         tarfile.FIFOTYPE, tarfile.CHRTYPE, tarfile.BLKTYPE, tarfile.CONTTYPE, b"S", b"L", b"K",
                         b"g", b"x", b"Z"])


@st.composite
def members(draw: st.DrawFn) -> tuple[bytes, dict]:
    name = draw(NAMES)
    type_ = draw(TYPES)
    data = draw(st.binary(max_size=64))
    pax = draw(st.one_of(st.just({}), st.dictionaries(PAX_KEYS, st.one_of(NUMBERS, NAMES), max_size=3)))
    link = draw(NAMES) if type_ in (tarfile.SYMTYPE, tarfile.LNKTYPE) else ""
    fields = {"linkname": link[:100], "mode": draw(st.integers(0, 0o7777))}
    try:
        raw = raw_member(name[:100] if name.isascii() else "u", data, type_, pax, **fields)
    except (ValueError, UnicodeError):  # names tarfile will not write in ustar: pax records say them
        raw = raw_member("u", data, type_, {**pax, "path": name, "linkpath": link}, mode=fields["mode"])
    kind = {tarfile.DIRTYPE: "dir", tarfile.SYMTYPE: "symlink", tarfile.LNKTYPE: "hardlink"}.get(type_, "file")
    return raw, index_line(pax.get("path", name).rstrip("/"), data, kind)


@st.composite
def byte_mutations(draw: st.DrawFn, data: bytes) -> bytes:
    for _ in range(draw(st.integers(0, 3))):
        op = draw(st.sampled_from(["flip", "set", "cut", "insert", "truncate"]))
        pos = draw(st.integers(0, max(len(data) - 1, 0)))
        if op == "flip" and data:
            data = data[:pos] + bytes([data[pos] ^ (1 << draw(st.integers(0, 7)))]) + data[pos + 1:]
        elif op == "set" and data:
            data = data[:pos] + bytes([draw(st.integers(0, 255))]) + data[pos + 1:]
        elif op == "cut":
            data = data[:pos] + data[pos + draw(st.integers(1, 600)):]
        elif op == "insert":
            data = data[:pos] + draw(st.binary(min_size=1, max_size=40)) + data[pos:]
        else:
            data = data[:pos]
    return data


@st.composite
def archives(draw: st.DrawFn) -> tuple[bytes, bytes]:
    """A tar archive and its index, built from odd members, then perhaps damaged byte-wise."""
    drawn = draw(st.lists(members(), min_size=1, max_size=6))
    tar = archive(*(raw for raw, _ in drawn))
    index = index_bytes([entry for _, entry in drawn])
    return draw(byte_mutations(tar)), draw(st.one_of(st.just(index), byte_mutations(index)))


JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**64), 2**64) | st.floats(allow_nan=False) | NAMES,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=8,
)
MANIFEST_KEYS = ["format", "id", "job", "host", "vigil_version", "started_at", "finished_at", "artifacts",
                 "warnings", "sources"]
ARTIFACT_KEYS = ["name", "source", "type", "size", "sha256", "compression", "encrypted", "entries", "bytes",
                 "database", "tables"]


@st.composite
def manifest_edits(draw: st.DrawFn) -> list[tuple[int | None, str, Any]]:
    """(artifact number or None for the manifest itself, key, new value or a deletion)."""
    edits = []
    for _ in range(draw(st.integers(1, 3))):
        which = draw(st.one_of(st.none(), st.integers(0, 1)))
        key = draw(st.sampled_from(MANIFEST_KEYS if which is None else ARTIFACT_KEYS))
        special = ["../../outside", "/etc/hostname", "", "..", ".", "manifest.json", "garbage",
                   "20260101T000000Z-abcdef", "20260101T000000Z-abcdee", "app", "other", -1, 2**70, "0" * 64]
        edits.append((which, key, draw(st.one_of(st.just(_DELETE), st.sampled_from(special), JSON))))
    return edits


_DELETE = object()


# --- one example --------------------------------------------------------------------------------


@contextmanager
def no_hang() -> Iterator[None]:
    def hung(_sig: int, _frame: Any) -> None:
        raise AssertionError(f"no answer in {HANG_SECONDS}s: a hang")

    old = signal.signal(signal.SIGALRM, hung)
    signal.alarm(HANG_SECONDS)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


def _listing(root: Path, skip: Path) -> dict[str, tuple[int, int, bytes | str | None]]:
    out = {}
    for dirpath, dirs, files in os.walk(root):
        if Path(dirpath) == skip.parent:
            dirs[:] = [d for d in dirs if d != skip.name]
        for name in dirs + files:
            p = Path(dirpath) / name
            st_ = p.lstat()
            content = os.readlink(p) if p.is_symlink() else p.read_bytes() if p.is_file() else None
            out[str(p.relative_to(root))] = (st_.st_mode, st_.st_size, content)
    return out


def write_stored(dest: Path, tar: bytes, index: bytes, edits: list, consistent: bool) -> None:
    d = dest / "app" / BACKUP_ID
    d.mkdir(parents=True)
    arts = []
    for name, typ, raw in (("files-app.tar.zst", "files", tar), ("index-app.jsonl.zst", "index", index)):
        stored = zstandard.compress(raw)
        (d / name).write_bytes(stored)
        # A coherent liar updates the checksums; a damaged disk does not.
        listed = stored if consistent else zstandard.compress(raw + b"x")
        arts.append({"name": name, "source": "app", "type": typ, "size": len(listed),
                     "sha256": hashlib.sha256(listed).hexdigest(), "compression": "zstd"})
    doc: dict[str, Any] = {"format": 1, "id": BACKUP_ID, "job": "app", "host": "h", "vigil_version": "0",
                           "started_at": "2026-01-01T00:00:00.000Z", "finished_at": "2026-01-01T00:00:01.000Z",
                           "artifacts": arts, "warnings": [], "sources": []}
    for which, key, value in edits:
        target = doc if which is None else doc["artifacts"][which] if isinstance(doc.get("artifacts"), list) \
            and len(doc["artifacts"]) > which and isinstance(doc["artifacts"][which], dict) else None
        if target is None:
            continue
        if value is _DELETE:
            target.pop(key, None)
        else:
            target[key] = value
    (d / "manifest.json").write_text(json.dumps(doc))


def verify_and_restore(tar: bytes, index: bytes, edits: list, consistent: bool) -> None:
    root = Path(tempfile.mkdtemp(prefix="vigil-fuzz-"))
    try:
        dest, sandbox = root / "dest", root / "sandbox"
        sandbox.mkdir()
        (root / "outside").mkdir()
        (root / "outside" / "victim").write_text("precious")
        cfg = root / "app.toml"
        cfg.write_text(f'name = "app"\nstate_dir = "{root / "state"}"\n[[source]]\ntype = "files"\nname = "app"\n'
                       f'path = "{root / "src"}"\n[[destination]]\ntype = "local"\npath = "{dest}"\n')
        [job] = load_config(str(cfg))
        write_stored(dest, tar, index, edits, consistent)
        target = sandbox / "target"
        before = _listing(root, target)
        with no_hang():
            try:
                report = Verifier(job, LOG).verify("latest", deep=True, restore_test=False)
                event(f"verify: {'damaged' if report.problems else 'intact'}")
            except VigilError as exc:
                event(f"verify: {type(exc).__name__}")
            try:
                restore(job, "latest", "app", to_dir=target, to_database=None, to_file=None, include=[],
                        force=False, log=LOG)
                event("restore: done")
            except VigilError as exc:
                event(f"restore: {type(exc).__name__}")
        assert sorted(os.listdir(sandbox)) in ([], ["target"])
        assert _listing(root, target) == before  # the destination, the job, everything else: untouched
    finally:
        shutil.rmtree(root)


@FUZZ
@given(archives(), st.sampled_from([True, True, True, False]))
def test_mutated_archives_and_indexes(stored: tuple[bytes, bytes], consistent: bool) -> None:
    verify_and_restore(*stored, [], consistent)


@FUZZ
@given(manifest_edits())
def test_mutated_manifests(edits: list) -> None:
    tar = archive(raw_member("a.txt", b"hello\n"), raw_member("b/", type_=tarfile.DIRTYPE, mode=0o755))
    verify_and_restore(tar, index_bytes([index_line("a.txt", b"hello\n"), index_line("b", kind="dir")]), edits,
                       True)


@FUZZ
@given(st.lists(st.one_of(JSON.map(json.dumps), st.binary(max_size=40).map(lambda b: b.decode("latin-1"))),
                max_size=5))
def test_mutated_index_lines(lines: list[str]) -> None:
    tar = archive(raw_member("a.txt", b"hello\n"), raw_member("b/", type_=tarfile.DIRTYPE, mode=0o755),
                  raw_member("b/c", b"c"))
    index = "\n".join(lines).encode("utf-8", "surrogateescape")
    verify_and_restore(tar, index, [], True)
