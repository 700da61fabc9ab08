"""The benchmark trees: a mutated day is what its docstring says, and the same every time."""

from __future__ import annotations

import hashlib
import subprocess
from pathlib import Path

from gen_dataset import DAYS, generate, mutate


def snapshot(root: Path) -> dict[str, tuple[int, str]]:
    return {str(p.relative_to(root)): (p.stat().st_size, hashlib.sha256(p.read_bytes()).hexdigest())
            for p in sorted(root.rglob("*")) if p.is_file() and not p.is_symlink()}


def test_a_day_is_the_same_for_the_same_seed_and_day(tmp_path: Path) -> None:
    generate(tmp_path / "a", "small")
    subprocess.run(["cp", "-a", tmp_path / "a", tmp_path / "b"], check=True)  # as the bench copies it
    generate(tmp_path / "c", "small")
    mutate(tmp_path / "a", 1, "small")
    mutate(tmp_path / "b", 1, "small")
    mutate(tmp_path / "c", 2, "small")
    assert snapshot(tmp_path / "a") == snapshot(tmp_path / "b")
    assert snapshot(tmp_path / "a") != snapshot(tmp_path / "c")


def test_a_day_edits_grows_creates_and_deletes_as_many_files_as_it_says(tmp_path: Path) -> None:
    root = tmp_path / "www"
    generate(root, "small")
    before = snapshot(root)
    done = mutate(root, 3, "small")
    after = snapshot(root)
    day = DAYS["small"]
    same_size = [p for p in before if p in after and after[p] != before[p] and after[p][0] == before[p][0]]
    grown = [p for p in before if p in after and after[p][0] > before[p][0]]
    assert len(same_size) == day["same_size"]
    assert len(grown) == day["grown"]
    assert len(after.keys() - before.keys()) == day["created"]
    assert len(before.keys() - after.keys()) == day["deleted"]
    assert done == dict(edited=day["same_size"], grown=day["grown"], created=day["created"],
                        deleted=day["deleted"], bytes_added=done["bytes_added"])


def test_the_text_tree_is_mostly_text(tmp_path: Path) -> None:
    generate(tmp_path / "text", "small", kind="text")
    files = snapshot(tmp_path / "text")
    uploads = sum(size for p, (size, _) in files.items() if "/uploads/" in p)
    assert uploads < 0.1 * sum(size for size, _ in files.values())
