"""The environment vigil gives the programs it starts (hooks, command channels).

They get the environment vigil was started with, minus the secrets vigil reads
for itself (the variables every `*_env` key of a job names), and the umask
vigil was started with rather than its own 077.
"""

from __future__ import annotations

import os
from typing import Any

from msgspec import Struct

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
