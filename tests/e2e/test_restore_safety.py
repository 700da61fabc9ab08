"""restore writes only what it created: hostile targets and archives, damaged copies."""

from __future__ import annotations

import json
import os
import sqlite3
import stat
import tarfile
import textwrap
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from helpers import committed, files_job_body, flip_byte, tree_listing, vigil
from test_restore_verify import BACKUP_ID, craft_backup, member

OLD = 1_000_000_000  # 2001: an mtime no restore would set by chance


def untouched(path: Path) -> tuple:
    """What a restore must leave alone outside its target: bytes, mode, owner, mtime."""
    st = path.lstat()
    return path.read_bytes(), stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid, st.st_mtime_ns


def outside_file(tmp_path: Path) -> Path:
    victim = tmp_path / "outside" / "secret"
    victim.parent.mkdir()
    victim.write_bytes(b"not yours\n")
    victim.chmod(0o640)
    os.utime(victim, (OLD, OLD))
    return victim


@contextmanager
def umask(mask: int) -> Iterator[None]:
    old = os.umask(mask)
    try:
        yield
    finally:
        os.umask(old)


def two_destinations(src: Path, tmp_path: Path) -> str:
    return textwrap.dedent(f"""
        [[source]]
        type = "files"
        name = "app"
        path = "{src}"
        [[destination]]
        type = "local"
        name = "first"
        path = "{tmp_path / 'first'}"
        [[destination]]
        type = "local"
        name = "second"
        path = "{tmp_path / 'second'}"
    """)


def test_force_never_writes_through_a_hard_link_at_a_temporary_name(tmp_path, make_job):
    victim = outside_file(tmp_path)
    before = untouched(victim)
    dest = tmp_path / "dest"
    craft_backup(dest, [member("data.txt", b"restored\n", mode=0o4755, mtime=OLD + 1)])
    job = make_job(files_job_body(tmp_path / "src", dest))
    target = tmp_path / "target"
    target.mkdir()
    os.link(victim, target / ".vigil-restore-data.txt")  # planted where restore used to write

    vigil("restore", "app", BACKUP_ID, "--source", "app", "--to", str(target), "--force", config=job, check=0)
    assert untouched(victim) == before
    assert (target / "data.txt").read_bytes() == b"restored\n"
    assert stat.S_IMODE((target / "data.txt").stat().st_mode) == 0o4755
    assert (target / ".vigil-restore-data.txt").stat().st_ino == victim.stat().st_ino  # left as it was


def test_to_file_never_writes_through_a_symlink_at_a_temporary_name(tmp_path, make_job):
    db = tmp_path / "app.sqlite"
    conn = sqlite3.connect(db)
    conn.execute("CREATE TABLE t (x)")
    conn.execute("INSERT INTO t VALUES (42)")
    conn.commit()
    conn.close()
    job = make_job(f"""
        [[source]]
        type = "sqlite"
        name = "db"
        path = "{db}"
        [[destination]]
        type = "local"
        path = "{tmp_path / 'dest'}"
    """)
    vigil("run", config=job, check=0)
    victim = outside_file(tmp_path)
    before = untouched(victim)
    out = tmp_path / "out"
    out.mkdir()
    os.symlink(victim, out / ".vigil-restore-db.sqlite")
    os.symlink(victim, out / "db.sqlite")  # --force replaces the link itself

    vigil("restore", "app", "latest", "--source", "db", "--to-file", str(out / "db.sqlite"), "--force",
          config=job, check=0)
    assert untouched(victim) == before
    assert not (out / "db.sqlite").is_symlink()
    assert sqlite3.connect(out / "db.sqlite").execute("SELECT x FROM t").fetchall() == [(42,)]
    assert os.readlink(out / ".vigil-restore-db.sqlite") == str(victim)


@pytest.mark.timeout(60)
def test_fifo_member_named_like_a_temporary_does_not_hang(tmp_path, make_job):
    dest = tmp_path / "dest"
    craft_backup(dest, [member(".vigil-restore-x.txt", None, type=tarfile.FIFOTYPE, mode=0o640),
                        member("x.txt", b"after the fifo\n", mode=0o644)])
    job = make_job(files_job_body(tmp_path / "src", dest))
    target = tmp_path / "target"
    vigil("restore", "app", BACKUP_ID, "--source", "app", "--to", str(target), config=job, check=0, timeout=30)
    assert (target / "x.txt").read_bytes() == b"after the fifo\n"
    fifo = (target / ".vigil-restore-x.txt").lstat()
    assert stat.S_ISFIFO(fifo.st_mode) and stat.S_IMODE(fifo.st_mode) == 0o640


def test_hard_link_member_named_like_a_temporary_cannot_overwrite_its_target(tmp_path, make_job):
    dest = tmp_path / "dest"
    craft_backup(dest, [member("a.txt", b"original\n", mode=0o644, mtime=OLD),
                        member(".vigil-restore-b.txt", None, type=tarfile.LNKTYPE, linkname="a.txt"),
                        member("b.txt", b"other\n", mode=0o600)])
    job = make_job(files_job_body(tmp_path / "src", dest))
    target = tmp_path / "target"
    vigil("restore", "app", BACKUP_ID, "--source", "app", "--to", str(target), config=job, check=0)
    a = (target / "a.txt").stat()
    assert (target / "a.txt").read_bytes() == b"original\n"
    assert (stat.S_IMODE(a.st_mode), int(a.st_mtime)) == (0o644, OLD)
    assert (target / "b.txt").read_bytes() == b"other\n"
    assert (target / ".vigil-restore-b.txt").stat().st_ino == a.st_ino  # the archive's hard link, as it was


def test_fifo_and_root_modes_are_the_archived_ones(tmp_path, make_job, app_tree):
    os.mkfifo(app_tree / "queue.fifo")
    (app_tree / "queue.fifo").chmod(0o664)
    job = make_job(files_job_body(app_tree, tmp_path / "backups"))
    vigil("run", config=job, check=0)
    target = tmp_path / "new" / "restored"
    with umask(0o022):  # the user's umask: what a new directory normally gets
        vigil("restore", "app", "latest", "--source", "app", "--to", str(target), config=job, check=0)
    assert stat.S_IMODE((target / "queue.fifo").lstat().st_mode) == 0o664
    assert stat.S_IMODE(target.stat().st_mode) == 0o755
    assert stat.S_IMODE(target.parent.stat().st_mode) == 0o755

    # An archive with an entry for its root: the target gets that entry's mode and mtime.
    dest = tmp_path / "dest"
    craft_backup(dest, [member("./", None, type=tarfile.DIRTYPE, mode=0o750, mtime=OLD),
                        member("f.txt", b"x", mode=0o644)])
    crafted = make_job(files_job_body(tmp_path / "src", dest), name="app")
    root = tmp_path / "rooted"
    vigil("restore", "app", BACKUP_ID, "--source", "app", "--to", str(root), config=crafted, check=0)
    st = root.stat()
    assert (stat.S_IMODE(st.st_mode), int(st.st_mtime)) == (0o750, OLD)
    assert (root / "f.txt").read_bytes() == b"x"


def test_to_a_symlink_is_refused_in_one_line(tmp_path, make_job, app_tree):
    job = make_job(files_job_body(app_tree, tmp_path / "backups"))
    vigil("run", config=job, check=0)
    real = tmp_path / "real"
    real.mkdir()
    link = tmp_path / "link"
    link.symlink_to(real)
    proc = vigil("restore", "app", "latest", "--source", "app", "--to", str(link), config=job, check=2)
    assert proc.stderr.count("\n") == 1 and f"--to: {link} is a symlink" in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr and "internal error" not in proc.stderr
    assert list(real.iterdir()) == []


def test_a_damaged_copy_falls_back_to_the_next_destination(tmp_path, make_job, app_tree):
    job = make_job(two_destinations(app_tree, tmp_path))
    vigil("run", config=job, check=0)
    [first] = committed(tmp_path / "first")
    [second] = committed(tmp_path / "second")
    flip_byte(first / "files-app.tar.zst")

    target = tmp_path / "restored"
    proc = vigil("restore", "app", "latest", "--source", "app", "--to", str(target), config=job, check=0)
    assert "destination first" in proc.stderr and "checksum mismatch" in proc.stderr, proc.stderr
    assert "restored from destination second instead" in proc.stderr, proc.stderr
    assert "from second" in proc.stdout
    # Whatever the damaged copy had written before its damage showed is gone: no mix.
    assert tree_listing(target) == tree_listing(app_tree)

    summary = json.loads(vigil("restore", "app", "latest", "--source", "app", "--to", str(tmp_path / "j"),
                               "--json", config=job, check=0).stdout)
    assert summary["destination"] == "second" and summary["failed"][0].startswith("first: ")

    # --destination: that copy only.
    only = vigil("restore", "app", "latest", "--source", "app", "--to", str(tmp_path / "only"),
                 "--destination", "first", config=job, check=1)
    assert "checksum mismatch" in only.stderr and not (tmp_path / "only").exists()
    vigil("restore", "app", "latest", "--source", "app", "--to", str(tmp_path / "two"), "--destination", "second",
          config=job, check=0)
    assert tree_listing(tmp_path / "two") == tree_listing(app_tree)
    unknown = vigil("restore", "app", "latest", "--source", "app", "--to", str(tmp_path / "x"),
                    "--destination", "nosuch", config=job, check=2)
    assert unknown.stderr.count("\n") == 1 and "--destination 'nosuch'" in unknown.stderr, unknown.stderr

    # Every copy damaged: exit 1, and a target restored into with --force is as it was.
    flip_byte(second / "files-app.tar.zst")
    before = tree_listing(target)
    (target / "mine.txt").write_text("kept")
    before = tree_listing(target)
    proc = vigil("restore", "app", "latest", "--source", "app", "--to", str(target), "--force", config=job, check=1)
    assert "no destination holds an intact copy" in proc.stderr, proc.stderr
    assert tree_listing(target) == before
