"""Error types: each maps to one way a command ends."""

from __future__ import annotations

from vigil.logs import printable


class VigilError(Exception):
    """Base class; the message is one line meant for the operator.

    Messages often hold file names, which are data: bytes that are not UTF-8
    are shown escaped (`caf\\xe9`), so that no journal, terminal or mail
    writer meets a lone surrogate."""

    def __init__(self, message: object = "") -> None:
        super().__init__(printable(str(message)))


class ConfigError(VigilError):
    """Bad input (config file, key, argument): exit 2, names file and key."""


class BackupError(VigilError):
    """A run fails: carries the step that failed."""

    def __init__(self, message: str, step: str | None = None) -> None:
        super().__init__(message)
        self.step = step


class TransientError(BackupError):
    """A failure that may pass if retried (connection refused, timeout, 5xx)."""


class PermissionDenied(BackupError):
    """A server refused the account what it asked (create a database, read a table, log in):
    a matter of grants, never of the backup's bytes, and never reported as damage."""


class Damaged(BackupError):
    """A stored thing does not check out: a manifest, an archive, an index or an
    artifact's bytes. Whatever a destination hands back is untrusted input, and
    every way it can be malformed ends here, never in a Python error."""


class Interrupted(BaseException):
    """A termination signal arrived; BaseException so that generic
    `except Exception` cleanup code cannot swallow it."""

    def __init__(self, signame: str) -> None:
        super().__init__(signame)
        self.signame = signame
