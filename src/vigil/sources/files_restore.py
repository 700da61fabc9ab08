"""Restoring a files archive into a directory, never writing outside it.

The archive is extracted into a staging directory that restore creates under
a random name inside the target, and moved into the target only once the
whole archive and its index checked out: a damaged copy leaves the target as
it was, and the next destination's copy can be tried. Inside the staging
directory everything was made by restore itself; entries are created under
random names with O_EXCL (never reusing a name the archive or the target could
hold), their owner, mode and times set on the descriptor restore opened, and
renamed into place. Directories are opened one component at a time with
O_NOFOLLOW, so nothing is ever written through a symlink; member names that
are absolute or contain `..`, and hard links to outside the archive, are
refused. The final move renames entries into the target: a rename replaces a
file or symlink of that name, never writing through it, and a directory that
is in the way fails the restore before anything moved.

An incremental backup is restored from its chain (SPEC §11): each archive,
oldest first, is read once, and of an older one only the files whose entry in
the final index names that backup (`in`) are written; the final archive adds
the directories, links and the files it holds itself. So every file is written
once, paths deleted since the full never appear, and each is checked against
the final index.
"""

from __future__ import annotations

import errno
import hashlib
import logging
import os
import stat
from collections import OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

from vigil.children import original_umask
from vigil.errors import BackupError, ConfigError, Damaged
from vigil.formats.index import IndexCursor
from vigil.formats.tarreader import Member, TarFormatError, TarStream
from vigil.pipeline.reading import ArtifactReader
from vigil.sources.base import Restored, RestoreTarget
from vigil.sources.files import check_tally, compile_patterns, held_by
from vigil.sources.restore_file import NEW_FILE, create_unique

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


class _DamagedArchive(Damaged):
    """The archive is not a readable tar, or a file in it does not match the index.
    A BackupError (as every Damaged), so that the reader first checks whether the
    stored bytes differ from the manifest and reports that as the cause."""


def restore_tree(archives: list[ArtifactReader], index: ArtifactReader | None, target: RestoreTarget,
                 log: logging.Logger) -> Restored:
    """Extract a backup's archives (its chain's, oldest first, then its own) into
    target.directory, checking each file against the backup's `index`."""
    assert target.directory is not None
    root = _Root.open(target.directory, target.force)
    done = Restored()
    restored = False
    try:
        extractor = _Extractor(root, target.include, None, done, log)
        try:
            with extractor.staged():
                tally: dict[str, int] = {}
                for archive in archives:
                    extractor.older = archive is not archives[-1]
                    _extract_one(extractor, archive, index, tally)
                if index is not None:
                    check_tally(index, tally)
                extractor.commit()  # only a tree that checked out reaches the target
            extractor.set_dir_attrs()  # last: removing the staging directory changed the target's mtime
        except OSError as exc:  # what the archive asked of the file system, refused by it
            raise BackupError(f"cannot restore into {root.path}: {exc}") from None
        restored = True
    finally:
        root.close(restored)
    return done


def _extract_one(extractor: _Extractor, archive: ArtifactReader, index: ArtifactReader | None,
                 tally: dict[str, int]) -> None:
    if index is None:  # no index to check against: the archive as it is
        extractor.index = None
        extractor.extract(archive)
        return
    # The files this archive must hold: each is checked as written, and one it lacks is damage.
    files = (e for e in held_by(index, archive.manifest.id, extractor.older, tally) if e["type"] == "file")
    cursor = IndexCursor(files, keep_missed=True)
    extractor.index = cursor
    try:
        extractor.extract(archive)
        missing = [p for p in cursor.finish() if extractor.wanted(p, False)]  # also checks the index's bytes
    finally:
        cursor.close()
    if missing:
        raise _DamagedArchive(f"{archive.where}: {len(missing)} files of the backup are missing from the "
                              f"archive: {', '.join(missing[:10])}")


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
        for level in range(depth, len(key)):
            name = key[level]
            try:
                fd = os.open(name, _DIR_FLAGS, dir_fd=fd)
            except FileNotFoundError:
                if not create:
                    raise
                os.mkdir(name, 0o700, dir_fd=fd)
                fd = os.open(name, _DIR_FLAGS, dir_fd=fd)
            except OSError as exc:
                raise BackupError(f"refusing to write below {'/'.join(key[:level + 1])}: not a directory "
                                  f"(a symlink?): {exc.strerror}") from None
            self._fds[key[:level + 1]] = fd
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
    def __init__(self, root: _Root, include: list[str], index: IndexCursor | None, summary: Restored,
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
        # Reading an older archive of the chain: only its files that the final index names.
        self.older = False
        # A file that changed while backed up is archived again right after
        # itself; the index holds the last copy's hash. A copy that does not
        # match is judged only once no later copy of the same path follows.
        self._unmatched: tuple[str, str] | None = None  # (member name, path) of that copy

    @contextmanager
    def staged(self) -> Iterator[None]:
        """A fresh staging directory inside the target; gone again afterwards, whatever happened."""
        name, _ = create_unique(lambda n: os.mkdir(n, 0o700, dir_fd=self.root.fd))
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

    def wanted(self, name: str, is_dir: bool) -> bool:
        if self.include is None:
            return True
        return bool(self.include.match_file(name + "/" if is_dir else name))

    def _member(self, tar: TarStream, m: Member) -> None:
        if self.older and not self._held(m):
            return  # before anything is created for it, not even its directory
        if _is_root_entry(m):
            if self.include is None:  # the target itself: as the source root was
                self.dir_attrs.append(_DirAttrs((), m.mode & 0o7777, int(m.mtime), m.uid, m.gid))
            return
        parts = _safe_parts(m.name)
        name = "/".join(parts)
        if not self.wanted(name, m.isdir()):
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
            tmp, _ = create_unique(lambda n: os.mkfifo(n, 0o600, dir_fd=parent))
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

    def _held(self, m: Member) -> bool:
        """Of an older archive of the chain, whether the final index takes this member from it:
        a file whose entry names this backup. Every other entry comes from the final archive."""
        if not m.isreg() or self.index is None:
            return False
        parts = [p for p in m.name.split("/") if p not in ("", ".")]
        return self.index.seek("/".join(parts)) is not None

    def _file(self, tar: TarStream, m: Member, parent: int, leaf: str, name: str) -> bool:
        """Write one file; False when its content is not the one the index holds."""
        entry = self.index.seek(name) if self.index is not None else None
        tmp, fd = create_unique(lambda n: os.open(n, NEW_FILE, 0o600, dir_fd=parent))
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
        tmp, _ = create_unique(lambda n: os.symlink(m.linkname, n, dir_fd=parent))  # as it was, absolute or not
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
            tmp, _ = create_unique(lambda n: os.link(target[-1], n, src_dir_fd=src, dst_dir_fd=parent,
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
