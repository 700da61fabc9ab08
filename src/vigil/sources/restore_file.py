"""Restoring into the file system without trusting what is already there.

Every entry a restore creates is made under a random name that no archive
can predict, with O_EXCL (so nothing already there is reused or followed),
and renamed into place once complete: a rename replaces a file or symlink of
that name and never writes through it.
"""

from __future__ import annotations

import os
import secrets
import stat
from collections.abc import Callable
from contextlib import suppress
from pathlib import Path
from typing import TypeVar

from vigil.errors import BackupError, ConfigError
from vigil.pipeline.reading import ArtifactReader
from vigil.sources.base import Restored

TMP_PREFIX = ".vigil-restore-"
NEW_FILE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
_T = TypeVar("_T")


def create_unique(make: Callable[[str], _T]) -> tuple[str, _T]:
    """Make a new entry under a random name that no archive can predict. `make` must
    fail with FileExistsError rather than reuse or follow anything already there."""
    while True:
        name = f"{TMP_PREFIX}{secrets.token_hex(8)}"
        try:
            return name, make(name)
        except FileExistsError:
            continue


def check_file_target(target: Path, force: bool) -> None:
    try:
        st = os.lstat(target)
    except FileNotFoundError:
        return
    if stat.S_ISDIR(st.st_mode):
        raise ConfigError(f"--to-file: {target} is a directory")
    if not force:
        raise ConfigError(f"--to-file: {target} exists; use --force to overwrite it")


def restore_file(reader: ArtifactReader, target: Path, force: bool) -> Restored:
    """The artifact's decompressed content as the file `target`, only once all of it
    checked out against the manifest."""
    check_file_target(target, force)
    done = Restored()
    try:
        parent = os.open(target.parent, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError as exc:
        raise BackupError(f"--to-file: cannot open {target.parent} ({exc.strerror})") from None
    try:
        tmp, fd = create_unique(lambda n: os.open(n, NEW_FILE, 0o600, dir_fd=parent))
        try:
            with open(fd, "wb") as fh:
                for chunk in reader.plain():
                    fh.write(chunk)
                    done.bytes += len(chunk)
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
    done.entries = 1
    return done
