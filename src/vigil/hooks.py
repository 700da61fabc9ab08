"""Hook commands: argv lists (no shell), a timeout, output into the run log.

Hooks and command notification channels are other programs: they get the
environment vigil was started with, minus the secrets vigil reads for itself
(the variables every `*_env` key of a job names).
"""

from __future__ import annotations

import logging
import os
import subprocess
from datetime import timedelta
from pathlib import Path
from typing import Any

from msgspec import Struct

from vigil.errors import BackupError

# Hooks run with the umask vigil was started with, not vigil's own 077.
_original_umask = 0o022

# Names of the variables that hold secrets of the jobs this process works on.
_secret_names: set[str] = set()


def set_original_umask(mask: int) -> None:
    global _original_umask
    _original_umask = mask


def original_umask() -> int:
    """The umask vigil was started with: what the user expects new directories to get."""
    return _original_umask


def secret_env_names(cfg: Any) -> set[str]:
    """Every variable named by a `*_env` key anywhere in a job's configuration."""
    found: set[str] = set()
    if isinstance(cfg, Struct):
        for key in cfg.__struct_fields__:
            value = getattr(cfg, key)
            if key.endswith("_env") and isinstance(value, str) and value:
                found.add(value)
            else:
                found |= secret_env_names(value)
    elif isinstance(cfg, (list, tuple)):
        for item in cfg:
            found |= secret_env_names(item)
    return found


def protect_secrets(job: Any) -> None:
    """Keep the secrets of `job` out of every child started by `child_env`."""
    _secret_names.update(secret_env_names(job))


def child_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """The environment for a hook or a command channel: ours, without the secrets."""
    env = {k: v for k, v in os.environ.items() if k not in _secret_names}
    env.update(extra or {})
    return env


def run_hooks(kind: str, commands: list[list[str]], timeout: timedelta, log: logging.Logger,
              env: dict[str, str] | None = None, cwd: Path | None = None) -> None:
    """Run each command in order; the first failure raises BackupError at step hook:KIND."""
    if commands and cwd is not None and not cwd.is_dir():
        raise BackupError(f"{kind} hooks: working directory {cwd} (hooks.cwd) is not a directory",
                          f"hook:{kind}")
    for argv in commands:
        log.info("hook %s: running %s", kind, " ".join(argv))
        try:
            proc = subprocess.run(
                argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                timeout=timeout.total_seconds(), env=child_env(env), cwd=cwd,
                umask=_original_umask, check=False,
            )
        except FileNotFoundError:
            raise BackupError(f"{kind} hook {argv[0]!r}: command not found", f"hook:{kind}") from None
        except PermissionError:
            raise BackupError(f"{kind} hook {argv[0]!r}: permission denied", f"hook:{kind}") from None
        except subprocess.TimeoutExpired as exc:
            _log_output(log, kind, exc.output)
            raise BackupError(
                f"{kind} hook {' '.join(argv)!r} timed out after {timeout.total_seconds():.0f}s", f"hook:{kind}"
            ) from None
        _log_output(log, kind, proc.stdout)
        if proc.returncode != 0:
            last = (proc.stdout or b"").decode(errors="replace").strip().splitlines()[-1:] or [""]
            detail = f": {last[0]}" if last[0] else ""
            raise BackupError(
                f"{kind} hook {' '.join(argv)!r} exited with status {proc.returncode}{detail}", f"hook:{kind}"
            )


def _log_output(log: logging.Logger, kind: str, output: bytes | None) -> None:
    for line in (output or b"").decode(errors="replace").splitlines():
        log.info("hook %s | %s", kind, line)
