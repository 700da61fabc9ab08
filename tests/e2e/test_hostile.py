"""Whatever a destination hands back is untrusted: malformed archives, indexes and
manifests end in one DAMAGED or refused line, never in a Python error, and never
touch anything outside the backup or the restore target."""

from __future__ import annotations

import json
import tarfile
from pathlib import Path

import pytest
from helpers import vigil, vigil_json
from hostile import BACKUP_ID, GOOD_FILES, archive, good_archive, index_bytes, index_line, raw_member, write_backup


def two_destinations(tmp_path: Path, make_job) -> tuple[Path, Path, Path]:
    first, second = tmp_path / "first", tmp_path / "second"
    job = make_job(f"""
        [[source]]
        type = "files"
        name = "app"
        path = "{tmp_path / 'src'}"
        [[destination]]
        type = "local"
        name = "first"
        path = "{first}"
        [[destination]]
        type = "local"
        name = "second"
        path = "{second}"
    """)
    return job, first, second


def _flipped_checksum_field() -> bytes:
    tar, _ = good_archive()
    # One bit of the first header's checksum field: '0' becomes '8', not an octal digit.
    pos = tar.index(b"0", 148, 156)
    return tar[:pos] + bytes([tar[pos] ^ 0x08]) + tar[pos + 1:]


_FILE = GOOD_FILES["a.txt"]
# (archive, index entries, what the DAMAGED / refused line says)
CASES = {
    "flipped-bit": (_flipped_checksum_field(), [index_line("a.txt", _FILE)], "not an octal number"),
    "pax-size-abc": (archive(raw_member("a.txt", _FILE, pax={"size": "abc"})), [index_line("a.txt", _FILE)],
                     "pax size 'abc' is not a size"),
    "nan-mtime": (archive(raw_member("a.txt", _FILE, pax={"mtime": "nan"})), [index_line("a.txt", _FILE)],
                  "pax mtime 'nan' is not a number"),
    "huge-mtime": (archive(raw_member("a.txt", _FILE, pax={"mtime": "1e300"})), [index_line("a.txt", _FILE)],
                   "pax mtime '1e300' is not a number"),
    "nul-in-path": (archive(raw_member("a.txt", _FILE, pax={"path": "a\x00b.txt"})), [index_line("a.txt", _FILE)],
                    "NUL byte in member name"),
    "huge-gid": (archive(raw_member("a.txt", _FILE, pax={"gid": "9" * 25})), [index_line("a.txt", _FILE)],
                 "gid 9999999999999999999999999 is out of range"),
    "hardlink-to-dir": (archive(raw_member("d/", type_=tarfile.DIRTYPE, mode=0o755),
                                raw_member("h", type_=tarfile.LNKTYPE, linkname="d")),
                        [index_line("d", kind="dir"), index_line("h", kind="hardlink")],
                        "refusing hard link h to d"),
}
# A hard link's target is known to be a directory only when the link is made.
VERIFY_SEES = set(CASES) - {"hardlink-to-dir"}


@pytest.mark.parametrize("case", sorted(CASES))
def test_malformed_archive_is_one_clear_line(tmp_path, make_job, case):
    tar, entries, says = CASES[case]
    job, first, second = two_destinations(tmp_path, make_job)
    write_backup(first, tar, index_bytes(entries))
    good_tar, good_index = good_archive()
    write_backup(second, good_tar, good_index)

    proc = vigil("verify", "app", BACKUP_ID, "--deep", config=job)
    assert "Traceback" not in proc.stderr and "internal error" not in proc.stderr, proc.stderr
    assert f"OK       second:app/{BACKUP_ID}/files-app.tar.zst" in proc.stdout, proc.stdout
    if case in VERIFY_SEES:
        assert proc.returncode == 1, proc.stdout + proc.stderr
        [line] = [ln for ln in proc.stdout.splitlines() if ln.startswith("DAMAGED")]
        assert line.startswith(f"DAMAGED  first:app/{BACKUP_ID}/files-app.tar.zst: ") and says in line, line

    sandbox = tmp_path / "sandbox"
    sandbox.mkdir()
    target = sandbox / "target"
    # The damaged copy alone: one clear line, nothing written.
    proc = vigil("restore", "app", BACKUP_ID, "--source", "app", "--to", str(target), "--destination", "first",
                 config=job)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    [line] = proc.stderr.splitlines()
    assert line.startswith("vigil: error: ") and says in line, line
    assert [p.name for p in sandbox.iterdir()] == []
    # Without --destination the intact copy on the second destination is restored instead.
    proc = vigil("restore", "app", BACKUP_ID, "--source", "app", "--to", str(target), config=job)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert says in proc.stderr and "restored from destination second instead" in proc.stderr, proc.stderr
    assert [p.name for p in sandbox.iterdir()] == ["target"]
    assert (target / "a.txt").exists()


def test_manifest_pointing_outside_is_damaged_and_never_followed(tmp_path, make_job):
    job, first, second = two_destinations(tmp_path, make_job)
    victim = tmp_path / "victim"
    (victim / "keep").mkdir(parents=True)
    (victim / "keep" / "data").write_text("precious")
    secret = tmp_path / "secret"
    secret.write_text("not a backup's")
    tar, index = good_archive()
    # Three hostile manifests, each in a directory that is a well-formed backup id.
    write_backup(first, tar, index, backup_id="20260101T000001Z-000001",
                 manifest={"id": "../../victim/keep"})
    write_backup(first, tar, index, backup_id="20260101T000002Z-000002",
                 manifest={"artifacts": [{"name": str(secret), "source": "app", "type": "files", "size": 14,
                                          "sha256": "0" * 64}]})
    write_backup(first, tar, index, backup_id="20260101T000003Z-000003", manifest={"started_at": "garbage"})
    write_backup(second, tar, index, backup_id="20260101T000000Z-000000")

    rows = vigil_json("list", config=job)
    damaged = {r["id"]: r for r in rows if r["status"] == "damaged"}
    assert set(damaged) == {"20260101T000001Z-000001", "20260101T000002Z-000002", "20260101T000003Z-000003"}
    assert "id '../../victim/keep' is not a backup id" in damaged["20260101T000001Z-000001"]["reason"]
    assert "is not a plain file name" in damaged["20260101T000002Z-000002"]["reason"]
    assert "'garbage' is not an ISO 8601 time" in damaged["20260101T000003Z-000003"]["reason"]
    assert all(set(r) == set(rows[0]) for r in rows)  # the same keys on every row
    assert [r["id"] for r in rows if r["status"] == "complete"] == ["20260101T000000Z-000000"]
    text = vigil("list", config=job, check=0).stdout
    assert "app on first: backup 20260101T000003Z-000003 is damaged: manifest.json: started_at" in text

    # verify names the reason and exits 1; the newest stored backup is the damaged one.
    proc = vigil("verify", "app", "20260101T000002Z-000002", config=job, check=1)
    assert "DAMAGED  first:app/20260101T000002Z-000002: damaged backup: manifest.json: artifact name" in proc.stdout
    proc = vigil("verify", "app", "latest", config=job, check=1)
    assert "20260101T000003Z-000003: damaged backup" in proc.stdout
    every = vigil("verify", "app", "--all", config=job, check=1)
    assert "4 backup(s) checked, 3 problem(s) found" in every.stdout

    # A damaged newest backup is CRITICAL, with the reason.
    health = vigil("health", config=job)
    assert health.returncode == 2, health.stdout
    assert "destination first: newest backup is damaged: 20260101T000003Z-000003" in health.stdout

    # prune keeps only the last complete backup: nothing damaged is counted, deleted or followed.
    job.write_text(job.read_text() + "[retention]\nkeep_last = 1\n")
    proc = vigil("prune", config=job, check=0)
    assert "damaged backup 20260101T000001Z-000001: left in place" in proc.stdout
    assert (victim / "keep" / "data").read_text() == "precious" and secret.read_text() == "not a backup's"
    assert len(list((first / "app").iterdir())) == 3


def test_run_and_its_retention_survive_a_damaged_backup(tmp_path, make_job):
    src = tmp_path / "src"
    src.mkdir()
    (src / "f.txt").write_text("x")
    dest = tmp_path / "dest"
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "data").write_text("precious")
    job = make_job(f"""
        [[source]]
        type = "files"
        name = "app"
        path = "{src}"
        [[destination]]
        type = "local"
        path = "{dest}"
        [retention]
        keep_last = 1
        [files]
        incremental = false  # each backup stands alone: retention keeps one
    """)
    tar, index = good_archive()
    write_backup(dest, tar, index, backup_id="20200101T000000Z-000001", manifest={"id": "../../victim"})
    write_backup(dest, tar, index, backup_id="20200101T000000Z-000002", manifest={"started_at": "garbage"})
    vigil("run", config=job, check=0)
    vigil("run", config=job, check=0)
    assert (victim / "data").read_text() == "precious"
    rows = vigil_json("list", config=job)
    assert [r["status"] for r in rows] == ["complete", "damaged", "damaged"]
    assert vigil("health", config=job).returncode == 0  # the newest backup is complete


def test_destination_refuses_names_that_are_not_plain(tmp_path):
    from vigil.config.load import load_config
    from vigil.destinations.base import make_destination
    from vigil.errors import Damaged

    cfg = tmp_path / "j.toml"
    cfg.write_text(f'name = "app"\nstate_dir = "{tmp_path / "s"}"\n[[source]]\ntype = "files"\npath = "{tmp_path}"\n'
                   f'[[destination]]\ntype = "local"\npath = "{tmp_path / "d"}"\n')
    [job] = load_config(str(cfg))
    dest = make_destination(job.destination[0])
    write_backup(tmp_path / "d", *good_archive())
    for backup_id, name in ((BACKUP_ID, "/etc/hostname"), (BACKUP_ID, "../" + BACKUP_ID), (BACKUP_ID, ""),
                            ("..", "manifest.json"), ("../../etc", "hostname")):
        with pytest.raises(Damaged):
            dest.read("app", backup_id, name)
    for backup_id in ("..", "", "/tmp", "../app"):
        with pytest.raises(Damaged):
            dest.delete("app", backup_id)
    assert json.loads(dest.read("app", BACKUP_ID, "manifest.json").read())["id"] == BACKUP_ID


def test_symlinks_in_a_backup_are_never_followed(tmp_path, make_job):
    job, first, second = two_destinations(tmp_path, make_job)
    tar, index = good_archive()
    outside = tmp_path / "outside"
    write_backup(outside, tar, index, backup_id="20260101T000009Z-000009")
    # A backup directory that is a symlink to a (well-formed) backup elsewhere.
    (first / "app").mkdir(parents=True)
    (first / "app" / "20260101T000009Z-000009").symlink_to(outside / "app" / "20260101T000009Z-000009")
    # An artifact that is a symlink to a file outside with the very bytes the manifest lists.
    d = write_backup(second, tar, index)
    (outside / "stolen").write_bytes((d / "files-app.tar.zst").read_bytes())
    (d / "files-app.tar.zst").unlink()
    (d / "files-app.tar.zst").symlink_to(outside / "stolen")

    [row] = [r for r in vigil_json("list", config=job) if r["destination"] == "first"]
    assert row["status"] == "damaged" and "not a regular file in a plain directory" in row["reason"]
    proc = vigil("verify", "app", BACKUP_ID, config=job, check=1)
    assert f"DAMAGED  destination second: cannot read {d / 'files-app.tar.zst'}" in proc.stdout, proc.stdout
    proc = vigil("restore", "app", BACKUP_ID, "--source", "app", "--to", str(tmp_path / "t"), config=job, check=1)
    assert "Too many levels of symbolic links" in proc.stderr
