"""The `files` source: a directory tree as a POSIX pax tar, zstd, plus an index.

Why not `tarfile.add`: it trusts the size it stat()ed before reading, so a
file that grows while read is silently truncated and one that shrinks fails
the whole archive, and it cannot tell us that a file changed. Here every file
is opened once, fstat()ed before and after reading, and re-read when size,
mtime or ctime moved (up to REREADS times; `volatile` paths are stored as
read). The per-file SHA-256 goes into a JSON-lines index next to the archive.

Incremental backups (SPEC §11): with a base, the walk reads the base's index
alongside (both are in walk order, so memory stays flat however many files),
and a regular file whose stat matches its entry is not opened: its index line
is carried over, `in` naming the backup whose archive holds its bytes. The
index is also written, plain, into the local cache the next run compares with.
"""

from __future__ import annotations

import errno
import grp
import hashlib
import os
import pwd
import stat
from collections import deque
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

import pathspec

from vigil.config.schema import SqliteSource as SqliteConfig
from vigil.errors import BackupError, ConfigError, Damaged
from vigil.formats import index as index_format
from vigil.formats import tarheader as th
from vigil.formats.tarreader import TarFormatError, TarStream
from vigil.pipeline.hashing import Digest, Hasher
from vigil.pipeline.reading import ArtifactReader
from vigil.pipeline.stream import DIRECT, ArtifactStream
from vigil.sources.base import ArtifactOutput, Restored, RestoreTarget, Source
from vigil.state import index_cache

REREADS = 3
# Files up to this size are read whole, then checked, then written: a change
# costs only a re-read. Larger ones are streamed in CHUNK pieces and, when they
# changed, appended again (tar extraction keeps the last copy).
SMALL = 16 << 20
CHUNK = 1 << 20
CARRIED = 512  # index lines of unchanged files wait for at most this many others, to be written together

_O_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | getattr(os, "O_NOATIME", 0)


@cache
def _uname(uid: int) -> str:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return ""


@cache
def _gname(gid: int) -> str:
    try:
        return grp.getgrgid(gid).gr_name
    except KeyError:
        return ""


def _signature(st: os.stat_result) -> tuple[int, int, int]:
    return (st.st_size, st.st_mtime_ns, st.st_ctime_ns)


def _mtime(st: os.stat_result) -> int:
    return st.st_mtime_ns // 1_000_000_000  # floor, also before 1970


def compile_patterns(patterns: list[str]) -> pathspec.GitIgnoreSpec | None:
    return pathspec.GitIgnoreSpec.from_lines(patterns) if patterns else None


def read_index(reader: ArtifactReader, only: bytes | None = None) -> Iterator[dict[str, Any]]:
    """The stored index's entries (with `only`, those whose line holds that text); Damaged
    for one vigil did not write."""
    chunks = reader.plain()
    try:
        yield from index_format.iter_index(chunks, only)
    except index_format.IndexFormatError as exc:
        for _ in chunks:  # the stored bytes first: a damaged artifact says ChecksumError
            pass
        raise Damaged(f"{reader.where}: unreadable index: {exc}") from None


class FilesSource(Source):
    kind = "files"

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "path": str(self.cfg.path)}

    def backup(self, out: ArtifactOutput) -> None:
        job, ctx = self.ctx.job, self.ctx
        base = ctx.base_indexes.get(self.name)
        cache = index_cache.writer(job.state_dir, job.name, ctx.backup_id, self.name)
        try:
            with out.artifact(f"files-{self.name}.tar.zst", "files") as tar, \
                    out.artifact(f"index-{self.name}.jsonl.zst", "index", threads=1) as index:
                archiver = _Archiver(self, tar, index, cache, base)
                archiver.archive()
                tar.meta.update(entries=archiver.entries, bytes=archiver.bytes, state_bytes=archiver.state_bytes,
                                unchanged=archiver.unchanged)
                index.meta.update(entries=archiver.entries, content_sha256=cache.close())
            if cache.error:
                ctx.log.warning("files source %s: no local index cache (%s): the next backup reads its base from "
                                "a destination or is a full one", self.name, cache.error)
        except BaseException:
            cache.abort()
            raise

    def verify_deep(self, reader: ArtifactReader, related: list[ArtifactReader]) -> None:
        if reader.art.type != "files":
            reader.check()  # the index: read, and so checked, with its archive too
            return
        archives, index = self.chain(related)
        if index is None:
            raise BackupError(f"{reader.where}: no index artifact for source {reader.art.source}")
        bad: list[str] = []
        tally: dict[str, int] = {}
        for archive in archives:
            bad += _check_archive(archive, index, archive is not archives[-1], tally)
        check_tally(index, tally)
        if bad:
            raise Damaged(f"{reader.where}: {len(bad)} damaged entries: " + "; ".join(bad[:10]))

    def restore_to(self, readers: list[ArtifactReader], target: RestoreTarget) -> Restored:
        from vigil.sources.files_restore import restore_tree

        archives, index = self.chain(readers)
        if target.directory is None:
            raise ConfigError(f"source {self.name} is a files source: restore it with --to DIR")
        return restore_tree(archives, index, target, self.ctx.log)

    def chain(self, readers: list[ArtifactReader]) -> tuple[list[ArtifactReader], ArtifactReader | None]:
        """A backup's archives of this source, its chain's first (oldest first), and its own
        index. `readers` hold this source's artifacts of the backup and of every backup in
        its chain (SPEC §11); Damaged when one of those lacks its archive."""
        final = max((r.manifest for r in readers), key=lambda m: len(m.chain), default=None)
        if final is None:
            raise ConfigError(f"the backup holds nothing of source {self.name!r}")
        archives = []
        for backup_id in [*final.chain, final.id]:
            archive = next((r for r in readers if r.manifest.id == backup_id and r.art.type == "files"), None)
            if archive is None:
                if backup_id == final.id:
                    raise ConfigError(f"backup {final.id} holds nothing of source {self.name!r}")
                raise Damaged(f"backup {final.id}: its base {backup_id} holds no archive of source {self.name}")
            archives.append(archive)
        index = next((r for r in readers if r.manifest.id == final.id and r.art.type == "index"), None)
        if index is None and final.chain:
            raise Damaged(f"backup {final.id} is incremental but holds no index of source {self.name}: "
                          f"which files its chain holds cannot be told")
        return archives, index


def held_by(index: ArtifactReader, backup_id: str, older: bool, tally: dict[str, int]) -> Iterator[dict[str, Any]]:
    """The final index's entries that the archive of `backup_id` holds: of an older archive
    of the chain, the files whose `in` names it; of the backup's own, every entry but the
    files that older archives hold.

    An older archive's entries are found by the text of their lines, unparsed, since a
    chain means reading the index once per archive; `tally` counts them up there and down
    again as the full read of the backup's own pass meets them, and `check_tally` says
    whether the two agree (an index vigil did not write could hide a file from the first)."""
    if older:
        for e in read_index(index, index_format.held_in(backup_id)):
            if e["type"] == "file" and e.get("in") == backup_id:
                tally[backup_id] = tally.get(backup_id, 0) + 1
                yield e
        return
    for e in read_index(index):
        if e["type"] != "file" or e.get("in", backup_id) == backup_id:
            yield e
        else:
            held = str(e["in"])  # whatever an index that vigil did not write holds there
            tally[held] = tally.get(held, 0) - 1


def check_tally(index: ArtifactReader, tally: dict[str, int]) -> None:
    """After every archive of a chain was read: each file the index assigns to an older archive
    was seen by that archive's pass."""
    off = sorted(b for b, n in tally.items() if n)
    if off:
        raise Damaged(f"{index.where}: the files it assigns to backup {off[0]} are not written as vigil writes them")


def _check_archive(archive: ArtifactReader, index: ArtifactReader, older: bool, tally: dict[str, int]) -> list[str]:
    """Compare one archive of a backup's chain with the backup's index, side by side like a
    merge (both are in walk order): memory stays flat however many files."""
    cursor = index_format.IndexCursor(held_by(index, archive.manifest.id, older, tally), keep_missed=True)
    bad: list[str] = []

    def check(path: str, kind: str, size: int, sha: str | None) -> None:
        entry = cursor.seek(path)
        if entry is None:
            if not older:  # an older archive holds paths changed or deleted since
                bad.append(f"{path}: in the archive but not in the index")
        elif entry["type"] == "file" and (kind, size, sha) != ("file", entry["size"], entry["sha256"]):
            bad.append(f"{path}: content differs from the index")

    try:
        with archive.stream() as stream:
            tar = TarStream(stream)
            last: tuple[str, str, int, str | None] | None = None
            try:
                for m in tar:
                    m.check()  # what a restore would refuse, a deep verify reports
                    sha = None
                    kind = index_format.kind_of(m.type)
                    if kind == "file":
                        h = hashlib.sha256()
                        for chunk in tar.content():
                            h.update(chunk)
                        sha = h.hexdigest()
                    path = m.name.rstrip("/")
                    if last is not None and last[0] != path:
                        check(*last)
                    last = (path, kind, m.size, sha)  # a later copy of a file (re-read) supersedes
            except TarFormatError as exc:
                raise Damaged(f"{archive.where}: not a readable tar archive: {exc}") from None
        if last is not None:
            check(*last)
        bad.extend(f"{p}: missing from the archive {archive.manifest.id}" if older else f"{p}: missing from the archive"
                   for p in cursor.finish())
    finally:
        cursor.close()
    return bad


def _own_databases(source: FilesSource) -> set[str]:
    """The job's sqlite databases inside this tree, with their -wal, -journal and -shm files, as
    paths relative to its root: archived raw, a live database may be torn, and its sqlite source
    stores a consistent copy of it already."""
    roots = {str(source.cfg.path).rstrip("/") + "/", os.path.realpath(source.cfg.path).rstrip("/") + "/"}
    found: set[str] = set()
    for cfg in source.ctx.job.source:
        if not isinstance(cfg, SqliteConfig):
            continue
        # The path as configured and the file it leads to (a symlink in the tree may point elsewhere in it).
        rels = {path[len(root):] for root in roots for path in (str(cfg.path), os.path.realpath(cfg.path))
                if path.startswith(root)}
        for rel in sorted(rels):
            found.update(rel + suffix for suffix in ("", "-wal", "-journal", "-shm"))
            source.ctx.log.info("%s: leaving out %s (and its -wal, -journal, -shm): sqlite source %s "
                                "stores a consistent copy", source.label, rel, cfg.name)
    return found


class _Archiver:
    """One pass over one tree; state of the walk lives here, not in the source."""

    def __init__(self, source: FilesSource, tar: ArtifactStream, index: ArtifactStream,
                 cache: index_cache.CacheWriter, base: Path | None = None) -> None:
        self.source = source
        self.backup_id = source.ctx.backup_id
        self.cache = cache
        # The base's index, read alongside the walk (None: a full backup).
        self.base = index_format.IndexCursor(index_cache.entries(base)) if base is not None else None
        self.root = str(source.cfg.path)
        self.tar = tar
        self.index = index
        self.exclude = compile_patterns(source.cfg.exclude)
        self.volatile = compile_patterns(source.cfg.volatile)
        self.skip_dirs = source.ctx.skip_dirs
        self.skip_files = _own_databases(source)
        self.links: dict[tuple[int, int], str] = {}
        self._root_id: tuple[int, int] = (0, 0)  # (st_dev, st_ino) of the root when the walk began
        self.entries = 0
        self.bytes = 0  # content bytes stored in this archive
        self.state_bytes = 0  # content bytes of every file in the index: the tree's state
        self.unchanged = 0  # files carried over from the base, not read
        self._o_flags = _O_FLAGS
        self.hasher = Hasher()
        # Index lines wait here, in archive order, until their digest is known.
        # A line carried over from the base is ready as it is.
        self._pending: deque[tuple[Digest, str, str] | bytes] = deque()

    def archive(self) -> None:
        # Checked here, not in preflight: a `before` hook may mount or fill the root.
        try:
            root_st = os.stat(self.root)
        except FileNotFoundError:
            raise self.source.fail(f"path {self.root} does not exist") from None
        except OSError as exc:
            raise self.source.fail(f"path {self.root} cannot be read ({exc.strerror})") from None
        if not stat.S_ISDIR(root_st.st_mode):
            raise self.source.fail(f"path {self.root} is not a directory")
        self._root_id = (root_st.st_dev, root_st.st_ino)
        try:
            top = self._scan(self.root)
        except OSError as exc:
            raise self.source.fail(f"cannot read {self.root} ({exc.strerror})") from None
        try:
            self._walk(top, "")
            self._flush_index(wait=True)
        except index_format.IndexFormatError as exc:
            raise self.source.fail(f"the base's cached index is unreadable: {exc}") from None
        finally:
            self.hasher.close()
            if self.base is not None:
                self.base.close()
        # A root renamed away after its last entry was read leaves no other trace.
        self._check_root()
        self.tar.write(th.END)

    def _check_root(self) -> None:
        """Fail the source when its root is no longer the directory the walk began in.

        Entries are reached by path under the root: once the root is renamed,
        removed or replaced, every remaining one looks vanished, and a backup of
        what happened to be read before must not pass for a complete one."""
        try:
            st = os.stat(self.root)
        except OSError as exc:
            raise self.source.fail(f"path {self.root} vanished during the run ({exc.strerror})") from None
        if (st.st_dev, st.st_ino) != self._root_id:
            raise self.source.fail(f"path {self.root} was replaced by another directory during the run")

    def _vanished(self, rel: str, what: str) -> None:
        """An entry gone between listing and reading: a warning while the root stands."""
        self._check_root()
        self.source.warn(f"{rel}: {what}")

    def _scan(self, path: str) -> list[os.DirEntry[str]]:
        with os.scandir(path) as it:
            return sorted(it, key=lambda e: e.name)

    def _walk(self, entries: list[os.DirEntry[str]], prefix: str) -> None:
        # Explicit stack instead of recursion: trees can be deeper than
        # Python's recursion limit.
        stack = [iter(entries)]
        prefixes = [prefix]
        while stack:
            entry = next(stack[-1], None)
            if entry is None:
                stack.pop()
                prefixes.pop()
                continue
            rel = prefixes[-1] + entry.name
            try:
                st = entry.stat(follow_symlinks=False)
            except FileNotFoundError:
                self._vanished(rel, "vanished before it could be read")
                continue
            except OSError as exc:
                self.source.warn(f"{rel}: cannot stat ({exc.strerror})")
                continue
            kind = stat.S_IFMT(st.st_mode)
            if kind == stat.S_IFDIR:
                if (st.st_dev, st.st_ino) in self.skip_dirs:
                    continue
                if self.exclude and self.exclude.match_file(rel + "/"):
                    continue
                self._emit(rel, th.DIRTYPE, st, "dir")
                try:
                    children = self._scan(entry.path)
                except FileNotFoundError:
                    self._vanished(rel + "/", "directory vanished before it could be read")
                    continue
                except OSError as exc:
                    self.source.warn(f"{rel}/: directory unreadable, contents not stored ({exc.strerror})")
                    continue
                stack.append(iter(children))
                prefixes.append(rel + "/")
                continue
            if self.exclude and self.exclude.match_file(rel) or rel in self.skip_files:
                continue
            if kind == stat.S_IFREG:
                self._file(entry.path, rel, st)
            elif kind == stat.S_IFLNK:
                try:
                    target = os.readlink(entry.path)
                except FileNotFoundError:
                    self._vanished(rel, "vanished before it could be read")
                    continue
                except OSError as exc:
                    self.source.warn(f"{rel}: symlink unreadable ({exc.strerror})")
                    continue
                self._emit(rel, th.SYMTYPE, st, "symlink", link=target)
            elif kind == stat.S_IFIFO:
                self._emit(rel, th.FIFOTYPE, st, "fifo")
            elif kind in (stat.S_IFCHR, stat.S_IFBLK):
                type_ = th.CHRTYPE if kind == stat.S_IFCHR else th.BLKTYPE
                self._emit(rel, type_, st, "chardev" if kind == stat.S_IFCHR else "blockdev",
                           dev=(os.major(st.st_rdev), os.minor(st.st_rdev)))
            # Sockets cannot be archived (tar skips them too); they are runtime state.

    def _header(self, rel: str, type_: bytes, st: os.stat_result, size: int, link: str = "",
                dev: tuple[int, int] = (0, 0)) -> bytes:
        return th.header(
            rel, type_, mode=st.st_mode, uid=st.st_uid, gid=st.st_gid, size=size, mtime=_mtime(st),
            linkname=link, uname=_uname(st.st_uid), gname=_gname(st.st_gid),
            devmajor=dev[0], devminor=dev[1],
        )

    def _emit(self, rel: str, type_: bytes, st: os.stat_result, kind: str, *, link: str = "",
              dev: tuple[int, int] = (0, 0)) -> None:
        self.tar.write(self._header(rel, type_, st, 0, link, dev))
        self._index(rel, kind, st, 0, None, False, link)

    def _index(self, rel: str, kind: str, st: os.stat_result, size: int, sha: Digest,
               changed: bool, link: str = "", in_: str = "", ident_of: os.stat_result | None = None) -> None:
        """One index line. A file's identity (mtime_ns, ctime_ns, ino) is `ident_of`'s when
        given: the stat before a read that saw the file change, which the next run never matches."""
        self.entries += 1
        who = ident_of or st
        ident = (who.st_mtime_ns, who.st_ctime_ns, who.st_ino) if kind == "file" else None
        head, tail = index_format.line_parts(rel, kind, size, st.st_mode & 0o7777, _mtime(st), changed,
                                             st.st_uid, st.st_gid, link, ident, in_)
        self._pending.append((sha, head, tail))
        self._flush_index()

    def _flush_index(self, wait: bool = False) -> None:
        """Write the pending lines whose digests are known, in order, in one piece."""
        pending = self._pending
        ready: list[bytes] = []
        while pending:
            first = pending[0]
            if isinstance(first, bytes):
                line = first
            else:
                sha, head, tail = first
                if not (sha is None or isinstance(sha, str)):
                    if not (wait or sha.done()):
                        break
                    sha = sha.result()
                line = index_format.join_line(head, sha, tail)
            pending.popleft()
            ready.append(line)
        if ready:
            data = b"".join(ready)
            self.index.write(data)
            self.cache.write(data)

    def _open(self, path: str) -> int:
        try:
            return os.open(path, self._o_flags)
        except PermissionError:
            # O_NOATIME is refused on files we do not own unless we are root.
            if not self._o_flags & getattr(os, "O_NOATIME", 0):
                raise
            self._o_flags &= ~getattr(os, "O_NOATIME", 0)
            return os.open(path, self._o_flags)

    def _file(self, path: str, rel: str, st: os.stat_result) -> None:
        if st.st_nlink > 1:
            first = self.links.get((st.st_dev, st.st_ino))
            if first is not None:
                self.tar.write(self._header(rel, th.LNKTYPE, st, 0, first))
                self._index(rel, "hardlink", st, 0, None, False, first)
                return
        if self.base is not None and self._carry_over(rel, st):
            return
        volatile = bool(self.volatile and self.volatile.match_file(rel))
        tries = 1 if volatile else 1 + REREADS
        # The walk's lstat is the first "before": a change between it and the
        # fstat after reading is a change during the read.
        before = st
        for attempt in range(tries):
            try:
                fd = self._open(path)
            except FileNotFoundError:
                self._vanished(rel, "vanished before it could be read")
                return
            except OSError as exc:
                what = "replaced by a symlink" if exc.errno == errno.ELOOP else exc.strerror
                self.source.warn(f"{rel}: unreadable, not stored ({what})")
                return
            try:
                if attempt:
                    before = os.fstat(fd)
                if before.st_size <= SMALL:
                    data = _read_upto(fd, before.st_size)
                    after = os.fstat(fd)
                    changed = len(data) != before.st_size or _signature(before) != _signature(after)
                    if changed and attempt + 1 < tries:
                        continue
                    if not stat.S_ISREG(after.st_mode):
                        self.source.warn(f"{rel}: replaced by a non-file while being read, not stored")
                        return
                    size = len(data)
                    head = self._header(rel, th.REGTYPE, after, size)
                    if size < DIRECT:
                        self.tar.write(head + data + th.padding(size))
                    else:
                        self.tar.write(head)
                        self.tar.write(data)
                        self.tar.write(th.padding(size))
                    sha = self.hasher.digest(data)
                else:
                    size, sha, short = self._stream(fd, rel, before)
                    after = os.fstat(fd)
                    changed = short or _signature(before) != _signature(after)
                    if changed and attempt + 1 < tries:
                        continue
            except OSError as exc:
                self.source.warn(f"{rel}: read error, not stored ({exc.strerror})")
                return
            finally:
                os.close(fd)
            break
        if changed and not volatile:
            self.source.warn(f"{rel}: changed while being read {tries} times; stored as last read")
        self.bytes += size
        self.state_bytes += size
        # A volatile file that changed while read is stored as read, without a warning; its
        # bytes match no stat of it, so it is indexed with the stat from before: read again next time.
        self._index(rel, "file", after, size, sha, changed and not volatile, in_=self.backup_id,
                    ident_of=before if changed else None)
        if st.st_nlink > 1:
            self.links[(st.st_dev, st.st_ino)] = rel

    def _carry_over(self, rel: str, st: os.stat_result) -> bool:
        """A file the base holds as it is now: its index line is carried over, unread."""
        assert self.base is not None
        entry = self.base.seek(rel)
        if not index_format.unchanged(entry, st.st_size, st.st_mode & 0o7777, st.st_uid, st.st_gid,
                                      (st.st_mtime_ns, st.st_ctime_ns, st.st_ino)):
            return False
        assert entry is not None
        if entry["in"] not in self.source.ctx.base_chain:
            return False  # an index that names a backup outside the chain is not followed: stored anew
        self.unchanged += 1
        self.state_bytes += st.st_size
        self.entries += 1
        # Every value of the line is the one the base holds (`unchanged` compared them): its line, as it was.
        self._pending.append(entry[index_format.RAW])
        if len(self._pending) >= CARRIED:  # else they go with the next line written
            self._flush_index()
        if st.st_nlink > 1:
            self.links[(st.st_dev, st.st_ino)] = rel
        return True

    def _stream(self, fd: int, rel: str, st: os.stat_result) -> tuple[int, Digest, bool]:
        """Write a large file in chunks under a header stating its size at open."""
        size = st.st_size
        self.tar.write(self._header(rel, th.REGTYPE, st, size))
        sha = self.hasher.stream()
        left = size
        while left:
            chunk = os.read(fd, min(CHUNK, left))
            if not chunk:
                break
            sha.update(chunk)
            self.tar.write(chunk)
            left -= len(chunk)
        short = left > 0
        if short:  # shrank while read: pad to the promised size, flag as changed
            zeros = b"\x00" * left
            sha.update(zeros)
            self.tar.write(zeros)
        self.tar.write(th.padding(size))
        return size, sha.hexdigest(), short


def _read_upto(fd: int, size: int) -> bytes:
    """Read at most `size` bytes: the file as it was when opened."""
    data = os.read(fd, size) if size else b""
    if len(data) < size:
        parts = [data]
        got = len(data)
        while got < size:
            chunk = os.read(fd, size - got)
            if not chunk:
                break
            parts.append(chunk)
            got += len(chunk)
        data = b"".join(parts)
    return data
