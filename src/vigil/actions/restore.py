"""`vigil restore`: one source of one backup, into a directory, database or file.

A files archive is extracted into a staging directory that restore creates
under a random name inside the target, and moved into the target only once
the whole archive and its index checked out: a damaged copy leaves the target
as it was, and the next destination's copy can be tried. Inside the staging
directory everything was made by restore itself; entries are created under
random names with O_EXCL (never reusing a name the archive or the target could
hold), their owner, mode and times set on the descriptor restore opened, and
renamed into place. Directories are opened one component at a time with
O_NOFOLLOW, so nothing is ever written through a symlink; member names that
are absolute or contain `..`, and hard links to outside the archive, are
refused. The final move renames entries into the target: a rename replaces a
file or symlink of that name, never writing through it, and a directory that
is in the way fails the restore before anything moved.
"""

from __future__ import annotations

import errno
import hashlib
import logging
import os
import secrets
import stat
import time
from collections import OrderedDict
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, TypeVar

from vigil.config.schema import Job
from vigil.pipeline.crypto import decryptor
from vigil.destinations.base import Destination, make_destination
from vigil.errors import BackupError, ConfigError, Damaged, VigilError
from vigil.children import original_umask
from vigil.formats.manifest import Artifact, Manifest
from vigil.pipeline.progress import NO_PROGRESS, Meter
from vigil.pipeline.reading import ArtifactReader, ChecksumError, find_backup
from vigil.sources.db.process import database_client
from vigil.sources.files import compile_patterns
from vigil.formats.tarreader import Member, TarFormatError, TarStream
from vigil.actions.verify import IndexCursor, iter_index

TMP_PREFIX = ".vigil-restore-"
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_NEW_FILE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
_T = TypeVar("_T")


class _DamagedArchive(Damaged):
    """The archive is not a readable tar, or a file in it does not match the index.
    A BackupError (as every Damaged), so that the reader first checks whether the
    stored bytes differ from the manifest and reports that as the cause."""


_DAMAGE: tuple[type[BaseException], ...] = (Damaged, ChecksumError, TarFormatError)


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
    failed: list[str] = field(default_factory=list)  # destinations tried first, and why they failed

    def to_json(self) -> dict[str, Any]:
        return self.__dict__.copy()


def restore(job: Job, backup_id: str, source: str, *, to_dir: Path | None, to_database: str | None,
            to_file: Path | None, include: list[str], force: bool, log: logging.Logger,
            meter: Meter = NO_PROGRESS, destination: str | None = None) -> Summary:
    targets = [t for t in (to_dir, to_database, to_file) if t is not None]
    if len(targets) != 1:
        raise ConfigError("give exactly one of --to DIR, --to-database NAME, --to-file FILE")
    job.source_named(source)  # unknown source: a usage error naming it
    copies = _copies(job, backup_id, destination, log)
    if not copies:
        raise ConfigError(f"job {job.name}: no complete backup {backup_id!r} on any destination")
    if to_file is not None:
        _check_file_target(to_file, force)
    root = _Root.open(to_dir, force) if to_dir is not None else None
    failed: list[str] = []
    restored = False
    try:
        for dest, manifest in copies:
            try:
                summary = _restore_copy(job, dest, manifest, source, root, to_database, to_file, include,
                                        force, log, meter, str(targets[0]))
            except Exception as exc:  # noqa: BLE001 - sorted by _copy_failed; the rest is raised as it was
                if len(copies) == 1 or not _copy_failed(exc):
                    raise
                failed.append(f"{dest.name}: {exc}")
                log.warning("destination %s: its copy of backup %s cannot be restored: %s", dest.name,
                            manifest.id, exc)
                continue
            if failed:
                log.warning("restored from destination %s instead", dest.name)
            summary.failed = failed
            restored = True
            return summary
    finally:
        if root is not None:
            root.close(restored)
    raise BackupError(f"backup {copies[0][1].id}: no destination holds an intact copy "
                      f"({', '.join(d.name for d, _ in copies)} failed); nothing restored")


def _copy_failed(exc: Exception) -> bool:
    """Whether the next destination's copy may succeed where this one failed: this
    copy is damaged, or its destination failed while read. A problem with the target
    or the key would fail every copy alike."""
    if isinstance(exc, _DAMAGE):
        return True
    return isinstance(exc, BackupError) and (exc.step or "").startswith("destination:")


def _copies(job: Job, backup_id: str, only: str | None, log: logging.Logger) -> list[tuple[Destination, Manifest]]:
    """The backup on each destination that holds it, in the job's order; only `only`'s if given."""
    names = [str(d.name) for d in job.destination]
    if only is not None and only not in names:
        raise ConfigError(f"--destination {only!r}: job {job.name} has no such destination "
                          f"(destinations: {', '.join(names)})")
    dests = [make_destination(d) for d in job.destination if only in (None, d.name)]
    if len(dests) == 1:
        return find_backup(dests, job.name, backup_id)
    found: list[tuple[Destination, Manifest]] = []
    for dest in dests:
        try:
            found.extend(find_backup([dest], job.name, backup_id))
        except VigilError as exc:  # unreachable: the others may still hold the backup
            log.warning("%s; trying the other destinations", exc)
    if backup_id == "latest" and found:
        newest = max(m.id for _, m in found)
        found = [(d, m) for d, m in found if m.id == newest]
    return found


def _restore_copy(job: Job, dest: Destination, manifest: Manifest, source: str, root: _Root | None,
                  to_database: str | None, to_file: Path | None, include: list[str], force: bool,
                  log: logging.Logger, meter: Meter, target: str) -> Summary:
    arts = [a for a in manifest.artifacts if a.source == source]
    main = [a for a in arts if a.type != "index"]
    if not main:
        raise ConfigError(f"backup {manifest.id} holds nothing of source {source!r}")
    summary = Summary(source, manifest.id, dest.name, target)
    start = time.monotonic()
    art = main[0]

    decrypt = decryptor(job)
    reader = ArtifactReader(dest, manifest, art, decrypt, meter)
    if art.type == "files":
        if root is None:
            raise ConfigError(f"source {source} is a files source: restore it with --to DIR")
        index = next((a for a in arts if a.type == "index"), None)
        cursor = IndexCursor(iter_index(ArtifactReader(dest, manifest, index, decrypt))) if index else None
        extractor = _Extractor(root, include, cursor, summary, log)
        try:
            with extractor.staged():
                extractor.extract(reader)
                if cursor is not None:
                    cursor.finish()  # read the index to its end: its own checksum is checked there
                extractor.commit()  # only a tree that checked out reaches the target
            extractor.set_dir_attrs()  # last: removing the staging directory changed the target's mtime
        except OSError as exc:  # what the archive asked of the file system, refused by it
            raise BackupError(f"cannot restore into {root}: {exc}") from None
        finally:
            if cursor is not None:
                cursor.close()
    elif to_file is not None:
        _restore_to_file(reader, to_file, summary)
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


def _create(make: Callable[[str], _T]) -> tuple[str, _T]:
    """Make a new entry under a random name that no archive can predict. `make` must
    fail with FileExistsError rather than reuse or follow anything already there."""
    while True:
        name = f"{TMP_PREFIX}{secrets.token_hex(8)}"
        try:
            return name, make(name)
        except FileExistsError:
            continue


def _check_file_target(target: Path, force: bool) -> None:
    try:
        st = os.lstat(target)
    except FileNotFoundError:
        return
    if stat.S_ISDIR(st.st_mode):
        raise ConfigError(f"--to-file: {target} is a directory")
    if not force:
        raise ConfigError(f"--to-file: {target} exists; use --force to overwrite it")


def _restore_to_file(reader: ArtifactReader, target: Path, summary: Summary) -> None:
    try:
        parent = os.open(target.parent, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError as exc:
        raise BackupError(f"--to-file: cannot open {target.parent} ({exc.strerror})") from None
    try:
        tmp, fd = _create(lambda n: os.open(n, _NEW_FILE, 0o600, dir_fd=parent))
        try:
            with open(fd, "wb") as fh:
                for chunk in reader.plain():
                    fh.write(chunk)
                    summary.bytes += len(chunk)
                fh.flush()
                os.fsync(fh.fileno())
            # Only a verified stream becomes the file; a symlink of that name is
            # replaced, never written through.
            os.rename(tmp, target.name, src_dir_fd=parent, dst_dir_fd=parent)
        except BaseException:
            with suppress(FileNotFoundError):
                os.unlink(tmp, dir_fd=parent)
            raise
    except OSError as exc:
        raise BackupError(f"--to-file: cannot write {target} ({exc.strerror})") from None
    finally:
        os.close(parent)
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


def _is_root_entry(m: Member) -> bool:
    """The archive's entry for the source root itself (`.` or `./`)."""
    return m.isdir() and not m.name.startswith("/") and not [p for p in m.name.split("/") if p not in ("", ".")]


class _Root:
    """The --to directory, opened once and never through a symlink: a symlink given as
    --to is refused (its target could be anywhere), not followed."""

    def __init__(self, path: Path, fd: int, created: bool) -> None:
        self.path = path
        self.fd = fd
        self.created = created

    @classmethod
    def open(cls, path: Path, force: bool) -> _Root:
        created = False
        old = os.umask(original_umask())  # a new target gets the mode the user's umask gives
        try:
            path.mkdir(parents=True)
            created = True
        except FileExistsError:
            pass
        except OSError as exc:
            raise BackupError(f"--to: cannot create {path} ({exc.strerror})") from None
        finally:
            os.umask(old)
        if path.is_symlink():
            raise ConfigError(f"--to: {path} is a symlink (to {os.readlink(path)}); restore never writes "
                              f"through one: give the directory itself")
        try:
            fd = os.open(path, _DIR_FLAGS)
        except OSError as exc:
            raise ConfigError(f"--to: {path} is not a directory ({exc.strerror})") from None
        if os.listdir(fd) and not force:
            os.close(fd)
            raise ConfigError(f"--to: {path} is not empty; use --force to restore into it")
        return cls(path, fd, created)

    def close(self, restored: bool) -> None:
        os.close(self.fd)
        if self.created and not restored:
            with suppress(OSError):  # only an empty directory goes: nothing was restored into it
                os.rmdir(self.path)


class _DirCache:
    """Descriptors of the directories below one root, each opened one component at a
    time with O_NOFOLLOW; the least recently used are closed past a limit."""

    LIMIT = 128

    def __init__(self, root_fd: int) -> None:
        self._fds: OrderedDict[tuple[str, ...], int] = OrderedDict({(): root_fd})

    def get(self, parts: list[str] | tuple[str, ...], create: bool = True) -> int:
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
            while len(self._fds) > self.LIMIT:  # keep the root and the newest
                old_key = next(k for k in self._fds if k)
                os.close(self._fds.pop(old_key))
        return fd

    def close(self) -> None:
        for fd in self._fds.values():
            os.close(fd)
        self._fds.clear()


def _remove_tree(parent: int, name: str) -> None:
    """Delete the staging tree `name`, never following a symlink, without recursion
    and with one descriptor open at a time (trees can be thousands of levels deep).
    Climbing back with `..` is safe here: the tree is restore's own, mode 0700."""
    fd = os.open(name, _DIR_FLAGS, dir_fd=parent)
    stack: list[tuple[str, list[str]]] = [(name, _unlink_files(fd))]
    while True:
        here, subdirs = stack[-1]
        if subdirs:
            sub = subdirs.pop()
            child = os.open(sub, _DIR_FLAGS, dir_fd=fd)
            os.close(fd)
            fd = child
            stack.append((sub, _unlink_files(fd)))
            continue
        stack.pop()
        if not stack:
            os.close(fd)
            os.rmdir(here, dir_fd=parent)
            return
        up = os.open("..", _DIR_FLAGS, dir_fd=fd)
        os.close(fd)
        fd = up
        os.rmdir(here, dir_fd=fd)


def _unlink_files(fd: int) -> list[str]:
    """Remove every entry but directories; return those."""
    subdirs = []
    for name in os.listdir(fd):
        if stat.S_ISDIR(os.stat(name, dir_fd=fd, follow_symlinks=False).st_mode):
            subdirs.append(name)
        else:
            os.unlink(name, dir_fd=fd)
    return subdirs


@dataclass
class _DirAttrs:
    parts: tuple[str, ...]
    mode: int
    mtime: int
    uid: int
    gid: int


class _Extractor:
    def __init__(self, root: _Root, include: list[str], index: IndexCursor | None, summary: Summary,
                 log: logging.Logger) -> None:
        self.root = root
        self.include = compile_patterns(include)
        self.index = index  # the expected SHA-256 of each file, read alongside the archive
        self.summary = summary
        self.log = log
        # Set once the tree is in place: a directory's mtime changes as entries arrive.
        self.dir_attrs: list[_DirAttrs] = []
        self.stage: _DirCache  # the staging directory's, while staged() lasts
        self.as_root = os.geteuid() == 0
        # A file that changed while backed up is archived again right after
        # itself; the index holds the last copy's hash. A copy that does not
        # match is judged only once no later copy of the same path follows.
        self._unmatched: tuple[str, str] | None = None  # (member name, path) of that copy

    @contextmanager
    def staged(self) -> Iterator[None]:
        """A fresh staging directory inside the target; gone again afterwards, whatever happened."""
        name, _ = _create(lambda n: os.mkdir(n, 0o700, dir_fd=self.root.fd))
        self.stage = _DirCache(os.open(name, _DIR_FLAGS, dir_fd=self.root.fd))
        try:
            yield
        finally:
            self.stage.close()
            _remove_tree(self.root.fd, name)

    def extract(self, reader: ArtifactReader) -> None:
        # Leaving stream() compares the whole artifact with the manifest.
        with reader.stream() as stream:
            tar = TarStream(stream)
            try:
                for member in tar:
                    if self._unmatched is not None and member.name != self._unmatched[0]:
                        self._mismatch()
                    self._member(tar, member)
            except TarFormatError as exc:
                raise _DamagedArchive(f"{reader.where}: not a readable tar archive: {exc}") from None
            if self._unmatched is not None:
                self._mismatch()

    def commit(self) -> None:
        """Move the staged tree into the target."""
        target = _DirCache(os.dup(self.root.fd))
        try:
            for parts in self._plan(target):
                try:
                    os.rename(parts[-1], parts[-1], src_dir_fd=self.stage.get(parts[:-1], create=False),
                              dst_dir_fd=target.get(parts[:-1], create=False))
                except OSError as exc:
                    raise BackupError(f"cannot restore {'/'.join(parts)}: {exc.strerror}") from None
        finally:
            target.close()

    def set_dir_attrs(self) -> None:
        """The restored directories' owners, modes and times, deepest first, each on its descriptor."""
        target = _DirCache(os.dup(self.root.fd))
        try:
            for d in reversed(self.dir_attrs):
                fd = target.get(d.parts, create=False)
                if self.as_root:  # owner first: chown may clear the setgid bit
                    try:
                        os.fchown(fd, d.uid, d.gid)
                    except OSError as exc:
                        self.log.debug("cannot chown %s: %s", "/".join(d.parts) or ".", exc)
                os.chmod(fd, d.mode)
                os.utime(fd, (d.mtime, d.mtime))
        finally:
            target.close()

    def _plan(self, target: _DirCache) -> list[tuple[str, ...]]:
        """The staged entries to rename into the target: each one the target lacks, and
        each file or link replacing a file or link (--force); a directory on both sides
        is merged. A conflict fails here, before anything moved."""
        moves: list[tuple[str, ...]] = []
        todo: list[tuple[str, ...]] = [()]
        while todo:
            parts = todo.pop()
            src, dst = self.stage.get(parts, create=False), target.get(parts, create=False)
            for name in os.listdir(src):
                path = parts + (name,)
                staged = os.stat(name, dir_fd=src, follow_symlinks=False).st_mode
                try:
                    there = os.stat(name, dir_fd=dst, follow_symlinks=False).st_mode
                except FileNotFoundError:
                    moves.append(path)
                    continue
                if stat.S_ISDIR(staged) and stat.S_ISDIR(there):
                    todo.append(path)
                elif stat.S_ISDIR(there):
                    raise BackupError(f"cannot restore {'/'.join(path)}: a directory of that name exists")
                elif stat.S_ISDIR(staged):
                    raise BackupError(f"refusing to write below {'/'.join(path)}: not a directory (a symlink?)")
                else:
                    moves.append(path)
        return moves

    def _wanted(self, name: str, is_dir: bool) -> bool:
        if self.include is None:
            return True
        return bool(self.include.match_file(name + "/" if is_dir else name))

    def _member(self, tar: TarStream, m: Member) -> None:
        if _is_root_entry(m):
            if self.include is None:  # the target itself: as the source root was
                self.dir_attrs.append(_DirAttrs((), m.mode & 0o7777, int(m.mtime), m.uid, m.gid))
            return
        parts = _safe_parts(m.name)
        name = "/".join(parts)
        if not self._wanted(name, m.isdir()):
            return
        if m.ischr() or m.isblk():
            self.summary.skipped.append(f"{name}: device file not restored")
            return
        if m.isdir():
            self.stage.get(parts)
            self.dir_attrs.append(_DirAttrs(tuple(parts), m.mode & 0o7777, int(m.mtime), m.uid, m.gid))
            self.summary.entries += 1
            return
        parent = self.stage.get(parts[:-1])
        if m.isreg():
            if not self._file(tar, m, parent, parts[-1], name):
                return  # an earlier copy; a later one follows (or the restore fails)
        elif m.issym():
            self._symlink(m, parent, parts[-1], name)
        elif m.islnk():
            if not self._hardlink(m, parent, parts[-1], name):
                return
        elif m.isfifo():
            tmp, _ = _create(lambda n: os.mkfifo(n, 0o600, dir_fd=parent))
            # O_NONBLOCK: opening a FIFO for reading does not wait for a writer.
            fd = os.open(tmp, os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=parent)
            try:
                self._attrs(fd, m, name)
            finally:
                os.close(fd)
            self._place(parent, tmp, parts[-1], name)
        else:
            self.summary.skipped.append(f"{name}: unsupported member type")
            return
        self.summary.entries += 1

    def _file(self, tar: TarStream, m: Member, parent: int, leaf: str, name: str) -> bool:
        """Write one file; False when its content is not the one the index holds."""
        tmp, fd = _create(lambda n: os.open(n, _NEW_FILE, 0o600, dir_fd=parent))
        sha = hashlib.sha256()
        try:
            for chunk in tar.content():
                sha.update(chunk)
                view = memoryview(chunk)
                while view:
                    view = view[os.write(fd, view):]
            self._attrs(fd, m, name)
        finally:
            os.close(fd)  # a failure leaves the file in the staging directory, removed with it
        entry = self.index.seek(name) if self.index is not None else None
        want = entry.get("sha256") if entry else None
        if want and sha.hexdigest() != want:
            os.unlink(tmp, dir_fd=parent)
            self._unmatched = (m.name, name)
            return False
        self._unmatched = None
        self._place(parent, tmp, leaf, name)
        self.summary.bytes += m.size
        return True

    def _attrs(self, fd: int, m: Member, name: str) -> None:
        """Owner, mode and mtime, on the descriptor restore opened."""
        if self.as_root:  # owner first: chown clears the setuid and setgid bits
            try:
                os.fchown(fd, m.uid, m.gid)
            except OSError as exc:
                self.log.debug("cannot chown %s: %s", name, exc)
        os.fchmod(fd, m.mode & 0o7777)
        os.utime(fd, (m.mtime, m.mtime))

    def _symlink(self, m: Member, parent: int, leaf: str, name: str) -> None:
        tmp, _ = _create(lambda n: os.symlink(m.linkname, n, dir_fd=parent))  # as it was, absolute or not
        if self.as_root:
            try:
                os.chown(tmp, m.uid, m.gid, dir_fd=parent, follow_symlinks=False)
            except OSError as exc:
                self.log.debug("cannot chown %s: %s", name, exc)
        if os.utime in os.supports_follow_symlinks:  # else the platform cannot set a link's own mtime
            try:
                os.utime(tmp, (m.mtime, m.mtime), dir_fd=parent, follow_symlinks=False)
            except OSError as exc:
                self.log.debug("cannot set the mtime of %s: %s", name, exc)
        self._place(parent, tmp, leaf, name)

    def _hardlink(self, m: Member, parent: int, leaf: str, name: str) -> bool:
        """Link to an entry restored earlier from the archive; False if it was not.
        Owner and mode are the inode's, set when it was restored: a chown here would
        clear a setuid bit again."""
        target = _safe_parts(m.linkname)
        try:
            src = self.stage.get(target[:-1], create=False)
            tmp, _ = _create(lambda n: os.link(target[-1], n, src_dir_fd=src, dst_dir_fd=parent,
                                               follow_symlinks=False))
        except FileNotFoundError:
            self.summary.skipped.append(f"{name}: hard link to {m.linkname}, which was not restored")
            return False
        except OSError as exc:
            if exc.errno == errno.EPERM:  # a link to a directory: no valid archive holds one
                raise Damaged(f"refusing hard link {name} to {m.linkname}: {exc.strerror}") from None
            raise BackupError(f"cannot restore {name}: hard link to {m.linkname}: {exc.strerror}") from None
        self._place(parent, tmp, leaf, name)
        # A rename onto another name of the same inode does nothing: the temporary
        # name would stay behind.
        with suppress(FileNotFoundError):
            os.unlink(tmp, dir_fd=parent)
        return True

    def _place(self, parent: int, tmp: str, leaf: str, name: str) -> None:
        # rename replaces a file or a symlink of that name (never writing through
        # it) and refuses a directory: no stat needed first.
        try:
            os.rename(tmp, leaf, src_dir_fd=parent, dst_dir_fd=parent)
        except OSError as exc:
            if exc.errno not in (errno.EISDIR, errno.ENOTEMPTY, errno.EEXIST):
                raise
            os.unlink(tmp, dir_fd=parent)
            raise BackupError(f"cannot restore {name}: a directory of that name exists") from None

    def _mismatch(self) -> None:
        assert self._unmatched is not None
        raise _DamagedArchive(f"{self._unmatched[1]}: content does not match its SHA-256 in the index; "
                              f"not restored")
