"""Incremental chains against random histories of a tree (SPEC §11), in-process.

Each example mutates a small tree step by step — new files, edits that keep size
and mtime, deletions, renames, chmod, a file turned into a symlink or a
directory, hard links added and removed — and backs it up after every step.
Restoring each backup of the chain must give exactly the tree as it was at that
step: the same entries, bytes, modes, mtimes, link targets and hard-link groups.
"""

from __future__ import annotations

import logging
import os
import shutil
import stat
import tempfile
from pathlib import Path

from helpers import tree_listing
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from vigil.actions.backup import Run
from vigil.actions.restore import restore
from vigil.config.load import load_config
from vigil.state.journal import Outcome

EXAMPLES = int(os.environ.get("VIGIL_FUZZ_EXAMPLES", "25"))
LOG = logging.getLogger("vigil-incremental")
NAMES = ["a", "b", "c", "d/e", "d/f", "g/h/i"]

PROPERTY = settings(max_examples=EXAMPLES, derandomize="VIGIL_FUZZ_EXAMPLES" not in os.environ, deadline=None,
                    database=None, suppress_health_check=[HealthCheck.too_slow])

step = st.one_of(
    st.tuples(st.just("create"), st.sampled_from(NAMES), st.binary(max_size=64)),
    st.tuples(st.just("same_size_same_mtime"), st.sampled_from(NAMES), st.binary(min_size=1, max_size=1)),
    st.tuples(st.just("delete"), st.sampled_from(NAMES), st.none()),
    st.tuples(st.just("rename"), st.sampled_from(NAMES), st.sampled_from(NAMES)),
    st.tuples(st.just("chmod"), st.sampled_from(NAMES), st.sampled_from([0o600, 0o644, 0o755, 0o4755])),
    st.tuples(st.just("to_symlink"), st.sampled_from(NAMES), st.sampled_from(NAMES + ["/etc/passwd"])),
    st.tuples(st.just("to_dir"), st.sampled_from(NAMES), st.none()),
    st.tuples(st.just("hardlink"), st.sampled_from(NAMES), st.sampled_from(NAMES)),
)


def mutate(root: Path, op: str, name: str, arg: object) -> None:
    """One change to the tree; a change the tree's shape does not allow is skipped."""
    p = root / name
    try:
        if op == "create":
            p.parent.mkdir(parents=True, exist_ok=True)
            if p.is_dir() and not p.is_symlink():
                shutil.rmtree(p)
            p.unlink(missing_ok=True)
            p.write_bytes(arg)  # type: ignore[arg-type]
        elif op == "same_size_same_mtime" and p.is_file() and not p.is_symlink() and p.stat().st_size:
            st_ = p.stat()
            data = bytearray(p.read_bytes())
            data[0] = (data[0] + 1 + (arg[0] if isinstance(arg, bytes) else 0) % 254) % 256
            with open(p, "r+b") as fh:
                fh.write(bytes(data))
            os.utime(p, ns=(st_.st_atime_ns, st_.st_mtime_ns))  # only ctime tells
        elif op == "delete" and (p.is_symlink() or p.is_file()):
            p.unlink()
        elif op == "delete" and p.is_dir():
            shutil.rmtree(p)
        elif op == "rename" and (p.is_symlink() or p.is_file()):
            to = root / str(arg)
            if to != p and not to.is_dir():
                to.parent.mkdir(parents=True, exist_ok=True)
                os.rename(p, to)
        elif op == "chmod" and p.is_file() and not p.is_symlink():
            p.chmod(arg)  # type: ignore[arg-type]
        elif op == "to_symlink" and p.is_file() and not p.is_symlink():
            p.unlink()
            p.symlink_to(str(arg))
        elif op == "to_dir" and (p.is_file() or p.is_symlink()):
            p.unlink()
            p.mkdir()
            (p / "inside").write_bytes(b"now a directory")
        elif op == "hardlink" and p.is_file() and not p.is_symlink():
            to = root / str(arg)
            if to != p and not to.exists() and not to.is_symlink():
                to.parent.mkdir(parents=True, exist_ok=True)
                os.link(p, to)
    except (NotADirectoryError, FileExistsError, IsADirectoryError):
        pass  # e.g. a name below what is now a file


def state(root: Path) -> tuple[dict[str, tuple], set[frozenset[str]]]:
    """What a restore must reproduce, hard-link groups included."""
    groups: dict[int, set[str]] = {}
    for dirpath, _, files in os.walk(root):
        for name in files:
            p = Path(dirpath) / name
            st_ = p.lstat()
            if stat.S_ISREG(st_.st_mode):
                groups.setdefault(st_.st_ino, set()).add(str(p.relative_to(root)))
    return tree_listing(root), {frozenset(g) for g in groups.values() if len(g) > 1}


@PROPERTY
@given(st.lists(step, min_size=1, max_size=6))
def test_every_backup_of_a_chain_restores_its_own_tree(steps: list[tuple[str, str, object]]) -> None:
    work = Path(tempfile.mkdtemp(prefix="vigil-chain-"))
    try:
        src = work / "src"
        src.mkdir()
        for i, name in enumerate(NAMES[:4]):
            mutate(src, "create", name, f"content {i}\n".encode())
        cfg = work / "app.toml"
        cfg.write_text(f'name = "app"\nstate_dir = "{work / "state"}"\n[[source]]\ntype = "files"\nname = "app"\n'
                       f'path = "{src}"\n[[destination]]\ntype = "local"\npath = "{work / "dest"}"\n')
        [job] = load_config(str(cfg))
        saved: dict[str, tuple] = {}
        for op in [None, *steps]:
            if op is not None:
                mutate(src, *op)
            result = Run(job, log=LOG).execute()
            assert result.outcome == Outcome.SUCCESS, result.error
            assert result.backup_id is not None
            saved[result.backup_id] = state(src)
        kinds = [m.kind for m in _manifests(job)]
        assert kinds.count("full") == 1  # one full, then a chain of incrementals
        for backup_id, want in saved.items():
            target = work / f"restored-{backup_id}"
            restore(job, backup_id, "app", to_dir=target, to_database=None, to_file=None, include=[], force=False,
                    log=LOG)
            assert state(target) == want, backup_id
    finally:
        shutil.rmtree(work)


def _manifests(job):  # type: ignore[no-untyped-def]
    from vigil.destinations.base import make_destination

    return make_destination(job.destination[0]).list(job.name)
