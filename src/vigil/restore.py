"""`vigil restore`: one source of one backup, into a directory, database or file.

Files are extracted through directory file descriptors opened with
O_NOFOLLOW, one component at a time, so no entry is ever written through a
symlink, whatever the archive contains; member names that are absolute or
contain `..`, and hard links to outside the target, are refused. Each file is
written under a temporary name, checked against the index's SHA-256 and only
then renamed into place: a damaged archive never leaves a file that looks
complete.
"""

from __future__ import annotations

import errno
import hashlib
import logging
import os
import stat
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

from vigil.config import Job
from vigil.crypto import decryptor
from vigil.destinations import make_destination
from vigil.errors import BackupError, ConfigError, Damaged
from vigil.manifest import Artifact
from vigil.progress import NO_PROGRESS, Meter
from vigil.reading import ArtifactReader, find_backup
from vigil.sources.dbtools import database_client
from vigil.sources.files import compile_patterns
from vigil.tarreader import Member, TarFormatError, TarStream
from vigil.verify import IndexCursor, iter_index

TMP_PREFIX = ".vigil-restore-"
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


@dataclass
class Summary:
    source: str
    backup_id: str
    destination: str
    target: str
    entries: int = 0
    bytes: int = 0
    seconds: float = 0.0
    skipped: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return self.__dict__.copy()


def restore(job: Job, backup_id: str, source: str, *, to_dir: Path | None, to_database: str | None,
            to_file: Path | None, include: list[str], force: bool, log: logging.Logger,
            meter: Meter = NO_PROGRESS) -> Summary:
    targets = [t for t in (to_dir, to_database, to_file) if t is not None]
    if len(targets) != 1:
        raise ConfigError("give exactly one of --to DIR, --to-database NAME, --to-file FILE")
    job.source_named(source)  # unknown source: a usage error naming it
    found = find_backup([make_destination(d) for d in job.destination], job.name, backup_id)
    if not found:
        raise ConfigError(f"job {job.name}: no complete backup {backup_id!r} on any destination")
    dest, manifest = found[0]
    arts = [a for a in manifest.artifacts if a.source == source]
    main = [a for a in arts if a.type != "index"]
    if not main:
        raise ConfigError(f"backup {manifest.id} holds nothing of source {source!r}")
    summary = Summary(source, manifest.id, dest.name, str(targets[0]))
    start = time.monotonic()
    art = main[0]

    decrypt = decryptor(job)
    reader = ArtifactReader(dest, manifest, art, decrypt, meter)
    if art.type == "files":
        if to_dir is None:
            raise ConfigError(f"source {source} is a files source: restore it with --to DIR")
        index = next((a for a in arts if a.type == "index"), None)
        cursor = IndexCursor(iter_index(ArtifactReader(dest, manifest, index, decrypt))) if index else None
        try:
            _Extractor(to_dir, force, include, cursor, summary, log).extract(reader)
            if cursor is not None:
                cursor.finish()  # read the index to its end: its own checksum is checked there
        except OSError as exc:  # what the archive asked of the file system, refused by it
            raise BackupError(f"cannot restore into {to_dir}: {exc}") from None
        finally:
            if cursor is not None:
                cursor.close()
    elif to_file is not None:
        _restore_to_file(reader, to_file, force, summary)
    elif to_database is not None:
        if art.type not in ("postgres", "mysql"):
            raise ConfigError(f"source {source} is a {art.type} source: restore it with --to-file FILE")
        if len(main) > 1:
            raise ConfigError(f"source {source} holds {len(main)} databases: restore one at a time with "
                              f"--to-file, or name the artifact's database")
        _restore_database(job, reader, art, to_database, force, summary, log)
    else:
        raise ConfigError(f"source {source} is a {art.type} source: use --to-database or --to-file")
    summary.seconds = round(time.monotonic() - start, 3)
    return summary


def _restore_to_file(reader: ArtifactReader, target: Path, force: bool, summary: Summary) -> None:
    if target.exists() and not force:
        raise ConfigError(f"--to-file: {target} exists; use --force to overwrite it")
    tmp = target.with_name(f"{TMP_PREFIX}{target.name}")
    try:
        with open(tmp, "wb") as fh:
            for chunk in reader.plain():
                fh.write(chunk)
                summary.bytes += len(chunk)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, target)  # only a verified stream becomes the file
    finally:
        tmp.unlink(missing_ok=True)
    summary.entries = 1


def _restore_database(job: Job, reader: ArtifactReader, art: Artifact, name: str, force: bool,
                      summary: Summary, log: logging.Logger) -> None:
    engine = database_client(job, job.source_named(art.source), job.state_dir / "tmp")
    existed = engine.create_database(name, force)
    counting = _Counting(reader.plain())
    try:
        engine.load(name, counting, clean=existed)
    except BaseException:
        if not existed:
            log.error("restore into %s failed; dropping the half-restored database", name)
            engine.drop_database(name)
        raise
    summary.bytes = counting.bytes
    summary.entries = len(art.tables or {})


class _Counting:
    def __init__(self, chunks: Iterator[bytes]) -> None:
        self.chunks = chunks
        self.bytes = 0

    def __iter__(self) -> Iterator[bytes]:
        for chunk in self.chunks:
            self.bytes += len(chunk)
            yield chunk


def _safe_parts(name: str) -> list[str]:
    parts = [p for p in name.split("/") if p not in ("", ".")]
    if name.startswith("/") or not parts or ".." in parts:
        raise BackupError(f"refusing archive member {name!r}: absolute or outside the target")
    return parts


class _Extractor:
    def __init__(self, root: Path, force: bool, include: list[str], index: IndexCursor | None,
                 summary: Summary, log: logging.Logger) -> None:
        self.root = root
        self.force = force
        self.include = compile_patterns(include)
        self.index = index  # the expected SHA-256 of each file, read alongside the archive
        self.summary = summary
        self.log = log
        self.dir_times: list[tuple[list[str], int, int]] = []
        self._fds: OrderedDict[tuple[str, ...], int] = OrderedDict()
        self.as_root = os.geteuid() == 0
        # A file that changed while backed up is archived again right after
        # itself; the index holds the last copy's hash. A copy that does not
        # match is judged only once no later copy of the same path follows.
        self._unmatched: tuple[str, str] | None = None  # (member name, path) of that copy

    def extract(self, reader: ArtifactReader) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        if any(self.root.iterdir()) and not self.force:
            raise ConfigError(f"--to: {self.root} is not empty; use --force to restore into it")
        root_fd = os.open(self.root, _DIR_FLAGS)
        self._fds[()] = root_fd
        try:
            # Leaving stream() compares the whole artifact with the manifest.
            with reader.stream() as stream:
                tar = TarStream(stream)
                try:
                    for member in tar:
                        if self._unmatched is not None and member.name != self._unmatched[0]:
                            self._mismatch()
                        self._member(tar, member)
                except TarFormatError as exc:
                    raise Damaged(f"{reader.where}: not a readable tar archive: {exc}") from None
                if self._unmatched is not None:
                    self._mismatch()
            for parts, mtime, mode in reversed(self.dir_times):
                fd = self._dir(parts, create=False)
                os.chmod(fd, mode)
                os.utime(fd, (mtime, mtime))
        finally:
            for fd in self._fds.values():
                os.close(fd)
            self._fds.clear()

    def _wanted(self, name: str, is_dir: bool) -> bool:
        if self.include is None:
            return True
        return bool(self.include.match_file(name + "/" if is_dir else name))

    def _dir(self, parts: list[str] | tuple[str, ...], create: bool = True) -> int:
        """An fd for the directory at `parts`, never through a symlink."""
        key = tuple(parts)
        fd = self._fds.get(key)
        if fd is not None:
            self._fds.move_to_end(key)
            return fd
        # Down from the deepest directory already open (the root always is), one
        # component at a time: a loop, since trees can be deeper than Python's
        # recursion limit.
        depth = len(key) - 1
        while depth and key[:depth] not in self._fds:
            depth -= 1
        fd = self._fds[key[:depth]]
        for depth in range(depth, len(key)):
            name = key[depth]
            try:
                fd = os.open(name, _DIR_FLAGS, dir_fd=fd)
            except FileNotFoundError:
                if not create:
                    raise
                os.mkdir(name, 0o700, dir_fd=fd)
                fd = os.open(name, _DIR_FLAGS, dir_fd=fd)
            except OSError as exc:
                raise BackupError(f"refusing to write below {'/'.join(key[:depth + 1])}: not a directory "
                                  f"(a symlink?): {exc.strerror}") from None
            self._fds[key[:depth + 1]] = fd
            # Keep the root and the newest; close the least recently used.
            while len(self._fds) > 128:
                old_key = next(k for k in self._fds if k)
                os.close(self._fds.pop(old_key))
        return fd

    def _clear(self, parent: int, name: str) -> None:
        """Make room for an entry: --force replaces files and links, never directories."""
        try:
            st = os.stat(name, dir_fd=parent, follow_symlinks=False)
        except FileNotFoundError:
            return
        if stat.S_ISDIR(st.st_mode):
            raise BackupError(f"cannot restore {name}: a directory of that name exists")
        os.unlink(name, dir_fd=parent)

    def _member(self, tar: TarStream, m: Member) -> None:
        parts = _safe_parts(m.name)
        name = "/".join(parts)
        if not self._wanted(name, m.isdir()):
            return
        if m.ischr() or m.isblk():
            self.summary.skipped.append(f"{name}: device file not restored")
            return
        if m.isdir():
            self._dir(parts)
            self.dir_times.append((parts, int(m.mtime), m.mode & 0o7777))
            self._owner(parts[:-1], parts[-1], m)
            self.summary.entries += 1
            return
        parent = self._dir(parts[:-1])
        leaf = parts[-1]
        if m.isreg():
            if not self._file(tar, m, parent, leaf, name):
                return  # an earlier copy; a later one follows (or the restore fails)
        elif m.issym():
            self._clear(parent, leaf)
            os.symlink(m.linkname, leaf, dir_fd=parent)  # restored as it was, absolute or not
            self._times(parent, leaf, m)
        elif m.islnk():
            target = _safe_parts(m.linkname)
            self._clear(parent, leaf)
            try:
                src_parent = self._dir(target[:-1], create=False)
                os.link(target[-1], leaf, src_dir_fd=src_parent, dst_dir_fd=parent, follow_symlinks=False)
            except FileNotFoundError:
                self.summary.skipped.append(f"{name}: hard link to {m.linkname}, which was not restored")
                return
            except OSError as exc:  # EPERM for a directory: no valid archive links to one
                raise Damaged(f"refusing hard link {name} to {m.linkname}: {exc.strerror}") from None
        elif m.isfifo():
            self._clear(parent, leaf)
            os.mkfifo(leaf, m.mode & 0o7777, dir_fd=parent)
            self._times(parent, leaf, m)
        else:
            self.summary.skipped.append(f"{name}: unsupported member type")
            return
        # A file got its owner on the open descriptor (before its mode); a hard link
        # shares its inode, whose chown would clear a setuid bit again.
        if not (m.isreg() or m.islnk()):
            self._owner(parts[:-1], leaf, m)
        self.summary.entries += 1

    def _file(self, tar: TarStream, m: Member, parent: int, leaf: str, name: str) -> bool:
        """Write one file; False when its content is not the one the index holds."""
        tmp = f"{TMP_PREFIX}{leaf}"[:255]
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600,
                     dir_fd=parent)
        sha = hashlib.sha256()
        try:
            for chunk in tar.content():
                sha.update(chunk)
                view = memoryview(chunk)
                while view:
                    view = view[os.write(fd, view):]
            if self.as_root:  # owner first: chown clears the setuid and setgid bits
                try:
                    os.fchown(fd, m.uid, m.gid)
                except OSError as exc:
                    self.log.debug("cannot chown %s: %s", name, exc)
            os.fchmod(fd, m.mode & 0o7777)
            os.utime(fd, (m.mtime, m.mtime))
        except BaseException:
            os.close(fd)
            os.unlink(tmp, dir_fd=parent)
            raise
        os.close(fd)
        entry = self.index.seek(name) if self.index is not None else None
        want = entry.get("sha256") if entry else None
        if want and sha.hexdigest() != want:
            os.unlink(tmp, dir_fd=parent)
            self._unmatched = (m.name, name)
            return False
        self._unmatched = None
        # rename replaces a file or a symlink of that name (never writing through
        # it) and refuses a directory: no stat needed first.
        try:
            os.rename(tmp, leaf, src_dir_fd=parent, dst_dir_fd=parent)
        except OSError as exc:
            if exc.errno not in (errno.EISDIR, errno.ENOTEMPTY, errno.EEXIST):
                raise
            os.unlink(tmp, dir_fd=parent)
            raise BackupError(f"cannot restore {name}: a directory of that name exists") from None
        self.summary.bytes += m.size
        return True

    def _mismatch(self) -> None:
        assert self._unmatched is not None
        raise BackupError(f"{self._unmatched[1]}: content does not match its SHA-256 in the index; not restored")

    def _times(self, parent: int, leaf: str, m: Member) -> None:
        if os.utime not in os.supports_follow_symlinks:
            return  # the platform cannot set a symlink's own mtime
        try:
            os.utime(leaf, (m.mtime, m.mtime), dir_fd=parent, follow_symlinks=False)
        except OSError as exc:
            self.log.debug("cannot set the mtime of %s: %s", leaf, exc)

    def _owner(self, parent_parts: list[str], leaf: str, m: Member) -> None:
        if not self.as_root:
            return
        try:
            os.chown(leaf, m.uid, m.gid, dir_fd=self._dir(parent_parts), follow_symlinks=False)
        except OSError as exc:
            self.log.debug("cannot chown %s: %s", leaf, exc)
