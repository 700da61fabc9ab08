"""Hook commands: argv lists (no shell), a timeout, output into the run log.

Hooks get the environment `vigil.children` gives every program vigil starts.
"""

from __future__ import annotations

import logging
import subprocess
from datetime import timedelta
from pathlib import Path

from vigil.children import child_env, original_umask
from vigil.errors import BackupError


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
                umask=original_umask(), check=False,
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
