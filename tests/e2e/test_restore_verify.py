"""verify, restore and prune as a user runs them."""

from __future__ import annotations

import hashlib
import io
import json
import os
import stat
import tarfile
import time
from pathlib import Path

import zstandard
from helpers import appending, committed, files_job_body, flip_byte, remove_deep_tree, tree_listing, vigil, vigil_json

BACKUP_ID = "20260101T000000Z-abcdef"


def test_restore_round_trip_is_identical(tmp_path, make_job, app_tree):
    (app_tree / "ünï code.txt").write_text("x")
    os.symlink("/etc/hostname", app_tree / "abs-link")
    suid = app_tree / "bin-suid"
    suid.write_text("#!/bin/sh\n")
    os.link(suid, app_tree / "bin-suid-link")
    root = os.geteuid() == 0
    if root:
        os.chown(suid, 1000, 1000)
    suid.chmod(0o4755)  # after the chown, which clears it
    job = make_job(files_job_body(app_tree, tmp_path / "backups"))
    vigil("run", config=job, check=0)
    target = tmp_path / "restored"
    out = vigil("restore", "app", "latest", "--source", "app", "--to", str(target), config=job, check=0)
    assert "restored source app" in out.stdout
    assert tree_listing(target) == tree_listing(app_tree)  # modes with setuid bits, mtimes, bytes, links
    if root:  # owners too, and the setuid bit survives them
        st = (target / "bin-suid").stat()
        assert (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)) == (1000, 1000, 0o4755)
    link = target / "config/app.hardlink.php"
    twins = [p for p in (target / "config").iterdir() if p.stat().st_ino == link.stat().st_ino]
    assert len(twins) == 2  # hard-link identity survives

    summary = json.loads(vigil("restore", "app", "latest", "--source", "app", "--to", str(tmp_path / "r2"),
                               "--json", config=job, check=0).stdout)
    assert summary["entries"] > 500 and summary["bytes"] > 0 and "seconds" in summary

    # Not into a non-empty directory without --force; with it, yes.
    refused = vigil("restore", "app", "latest", "--source", "app", "--to", str(target), config=job)
    assert refused.returncode == 2 and "not empty" in refused.stderr
    vigil("restore", "app", "latest", "--source", "app", "--to", str(target), "--force", config=job, check=0)
    assert tree_listing(target) == tree_listing(app_tree)


def test_force_never_replaces_a_directory_with_a_file(tmp_path, make_job, app_tree):
    job = make_job(files_job_body(app_tree, tmp_path / "backups"))
    vigil("run", config=job, check=0)
    victim = next(str(p.relative_to(app_tree)) for p in sorted(app_tree.rglob("*.php"))
                  if not p.is_symlink() and p.stat().st_nlink == 1)
    target = tmp_path / "restored"
    (target / victim).mkdir(parents=True)  # a directory where the backup has a file
    (target / victim / "keep.txt").write_text("mine")
    proc = vigil("restore", "app", "latest", "--source", "app", "--to", str(target), "--force", config=job)
    assert proc.returncode == 1 and f"{victim}: a directory of that name exists" in proc.stderr
    assert (target / victim / "keep.txt").read_text() == "mine"
    assert not list(target.rglob(".vigil-restore-*"))  # no temporary file left behind


def test_restore_include_subset(tmp_path, make_job, app_tree):
    job = make_job(files_job_body(app_tree, tmp_path / "backups"))
    vigil("run", config=job, check=0)
    target = tmp_path / "part"
    vigil("restore", "app", "latest", "--source", "app", "--to", str(target), "--include", "config/",
          "--include", "routes/*.php", config=job, check=0)
    restored = {str(p.relative_to(target)) for p in target.rglob("*") if p.is_file()}
    assert restored and all(p.startswith(("config/", "routes/")) for p in restored)
    # gitignore semantics: "config/" is the whole directory, "routes/*.php" its direct children only.
    assert restored == {str(p.relative_to(app_tree)) for p in app_tree.rglob("*") if p.is_file()
                        and (str(p.relative_to(app_tree)).startswith("config/")
                             or (p.parent == app_tree / "routes" and p.suffix == ".php"))}


def craft_backup(dest: Path, members: list[tuple[tarfile.TarInfo, bytes | None]]) -> None:
    """A committed backup whose archive holds exactly these members."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for info, data in members:
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    d = dest / "app" / BACKUP_ID
    d.mkdir(parents=True)
    arts = []
    for name, typ, raw in (("files-app.tar.zst", "files", buf.getvalue()), ("index-app.jsonl.zst", "index", b"")):
        data = zstandard.compress(raw)
        (d / name).write_bytes(data)
        arts.append({"name": name, "source": "app", "type": typ, "size": len(data),
                     "sha256": hashlib.sha256(data).hexdigest(), "compression": "zstd"})
    (d / "manifest.json").write_text(json.dumps({
        "format": 1, "id": BACKUP_ID, "job": "app", "host": "h", "vigil_version": "0",
        "started_at": "2026-01-01T00:00:00.000Z", "finished_at": "2026-01-01T00:00:01.000Z",
        "artifacts": arts, "warnings": []}))


def member(name: str, data: bytes | None = b"evil\n", **kw) -> tuple[tarfile.TarInfo, bytes | None]:
    info = tarfile.TarInfo(name)
    for k, v in kw.items():
        setattr(info, k, v)
    if data is not None and info.type == tarfile.REGTYPE:
        info.size = len(data)
    else:
        data = None
    return info, data


def test_hostile_archives_write_nothing_outside(tmp_path, make_job):
    outside = tmp_path / "outside"
    outside.mkdir()
    cases = {
        "absolute": [member(str(outside / "abs.txt"))],
        "dotdot": [member("ok.txt"), member(f"../../{outside.name}/dotdot.txt")],
        "through-symlink": [member("link", type=tarfile.SYMTYPE, linkname=str(outside)),
                            member("link/through.txt")],
        "relative-symlink": [member("up", type=tarfile.SYMTYPE, linkname=".."),
                             member("up/outside/rel.txt")],
        "hardlink-out": [member("hl", type=tarfile.LNKTYPE, linkname="../outside/victim")],
    }
    for name, members in cases.items():
        dest = tmp_path / f"dest-{name}"
        craft_backup(dest, members)
        job = make_job(files_job_body(tmp_path / "src", dest), name="app")
        target = tmp_path / f"target-{name}"
        proc = vigil("restore", "app", BACKUP_ID, "--source", "app", "--to", str(target), config=job)
        assert proc.returncode == 1, (name, proc.stderr)
        assert "Traceback" not in proc.stderr and "refus" in proc.stderr, (name, proc.stderr)
        assert list(outside.iterdir()) == [], name
    assert not (tmp_path / "dotdot.txt").exists()


def test_absolute_symlink_is_restored_as_data(tmp_path, make_job):
    dest = tmp_path / "dest"
    craft_backup(dest, [member("public/storage", type=tarfile.SYMTYPE, linkname="/var/www/storage/app/public")])
    job = make_job(files_job_body(tmp_path / "src", dest))
    vigil("restore", "app", BACKUP_ID, "--source", "app", "--to", str(tmp_path / "t"), config=job, check=0)
    assert os.readlink(tmp_path / "t/public/storage") == "/var/www/storage/app/public"


def test_flipped_byte_is_found_by_verify_and_stops_restore(tmp_path, make_job, app_tree):
    job = make_job(files_job_body(app_tree, tmp_path / "backups"))
    vigil("run", config=job, check=0)
    vigil("verify", config=job, check=0)
    [backup] = committed(tmp_path / "backups")
    flip_byte(backup / "files-app.tar.zst")

    vigil("run", "--full", config=job, check=0)  # a second, intact backup that needs nothing of the first
    every = vigil("verify", "app", "--all", config=job, check=1)
    assert "2 backup(s) checked, 1 problem(s) found" in every.stdout
    for args in (["verify", "app", backup.name], ["verify", "app", backup.name, "--deep"]):
        proc = vigil(*args, config=job, check=1)
        assert "files-app.tar.zst" in proc.stdout and "checksum mismatch" in proc.stdout, proc.stdout

    target = tmp_path / "restored"
    proc = vigil("restore", "app", backup.name, "--source", "app", "--to", str(target), config=job, check=1)
    assert "checksum mismatch" in proc.stderr
    # Whatever was restored before the damage is exactly the original; nothing half-written remains.
    for p in target.rglob("*"):
        assert not p.name.startswith(".vigil-restore-"), p
        if p.is_file() and not p.is_symlink():
            assert p.read_bytes() == (app_tree / p.relative_to(target)).read_bytes(), p


def test_verify_missing_artifact_and_unknown_backup(tmp_path, make_job, app_tree):
    job = make_job(files_job_body(app_tree, tmp_path / "backups"))
    vigil("run", config=job, check=0)
    [backup] = committed(tmp_path / "backups")
    (backup / "index-app.jsonl.zst").unlink()
    proc = vigil("verify", config=job, check=1)
    assert "index-app.jsonl.zst" in proc.stdout
    assert vigil("verify", "app", "20200101T000000Z-000000", config=job).returncode == 2


def test_verify_takes_a_backup_without_the_job_name(tmp_path, make_job, app_tree):
    """`vigil verify latest` and, with one job configured, `vigil verify ID` need no job name."""
    job = make_job(files_job_body(app_tree, tmp_path / "backups"))
    vigil("run", config=job, check=0)
    [backup] = committed(tmp_path / "backups")
    for args in (["latest"], [backup.name], ["app", backup.name], ["app", "latest"]):
        proc = vigil("verify", *args, config=job, check=0)
        assert f"app/{backup.name}/files-app.tar.zst" in proc.stdout and "backup intact" in proc.stdout
    assert "unknown job 'nosuch'" in vigil("verify", "nosuch", config=job, check=2).stderr


def test_prune_dry_run_real_run_and_refusal_after_failure(tmp_path, make_job, app_tree):
    dest = tmp_path / "backups"
    job = make_job(files_job_body(app_tree, dest) + "[retention]\nkeep_last = 2\n[files]\nincremental = false\n")
    for _ in range(3):
        vigil("run", config=job, check=0)
    assert len(committed(dest)) == 2  # retention runs after each committed backup
    make_job(files_job_body(app_tree, dest) + "[retention]\nkeep_last = 1\n[files]\nincremental = false\n")
    dry = vigil("prune", "--dry-run", config=job, check=0)
    assert "would delete" in dry.stdout and "last #1" in dry.stdout
    assert len(committed(dest)) == 2

    # An unfinished backup from a run killed a day ago is cleaned up.
    stale = dest / "app" / ".partial-20250101T000000Z-123456"
    stale.mkdir()
    (stale / "files-app.tar.zst").write_bytes(b"half")
    old = time.time() - 2 * 86400
    os.utime(stale, (old, old))

    bad = make_job(files_job_body(tmp_path / "missing", dest) + "[retention]\nkeep_last = 1\n[files]\nincremental = false\n")
    vigil("run", config=bad, check=1)
    refused = vigil("prune", config=bad, check=1)
    assert "not pruning" in refused.stderr
    assert len(committed(dest)) == 2

    good = make_job(files_job_body(app_tree, dest) + "[retention]\nkeep_last = 1\n[files]\nincremental = false\n")
    vigil("run", config=good, check=0)
    assert len(committed(dest)) == 1
    assert not stale.exists()
    assert vigil_json("list", config=good)[0]["id"] == committed(dest)[0].name


def test_deep_verify_compares_every_entry_with_the_index(tmp_path, make_job, app_tree):
    # An archive rewritten consistently (manifest checksum updated too) so that
    # only the per-entry comparison with the index can tell what changed.
    (app_tree / "a").mkdir()
    (app_tree / "a/b.txt").write_text("inside a/")
    (app_tree / "a.txt").write_text("sorts after a/b.txt in the walk, before it as a string")
    job = make_job(files_job_body(app_tree, tmp_path / "backups"))
    vigil("run", config=job, check=0)
    vigil("verify", "app", "latest", "--deep", config=job, check=0)  # intact, including the a/ vs a.txt order
    [backup] = committed(tmp_path / "backups")
    art = backup / "files-app.tar.zst"
    members = []
    with tarfile.open(fileobj=io.BytesIO(zstandard.ZstdDecompressor().stream_reader(art.read_bytes()).read()),
                      mode="r:") as tar:
        for m in tar.getmembers():
            members.append((m, tar.extractfile(m).read() if m.isreg() else None))
    names = [m.name for m, _ in members]
    # Dropping a/b.txt puts a.txt right after a/: the comparison must know the
    # walk's order (a/b.txt before a.txt) to call one missing and the other intact.
    changed, dropped = "a.txt", "a/b.txt"
    regular = [m.name for m, _ in members if m.isreg() and m.name not in (changed, dropped)]
    assert changed in names and dropped in names
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for m, data in members:
            if m.name == dropped:
                continue
            if m.name == changed:
                data = data.upper()  # same size, other bytes
            tar.addfile(m, io.BytesIO(data) if data is not None else None)
            if m.name == regular[0]:
                extra = tarfile.TarInfo(regular[0] + ".extra")
                extra.size = 3
                tar.addfile(extra, io.BytesIO(b"new"))
    raw = zstandard.ZstdCompressor().compress(out.getvalue())
    art.write_bytes(raw)
    manifest = json.loads((backup / "manifest.json").read_text())
    for a in manifest["artifacts"]:
        if a["name"] == art.name:
            a["size"], a["sha256"] = len(raw), hashlib.sha256(raw).hexdigest()
    (backup / "manifest.json").write_text(json.dumps(manifest))

    vigil("verify", "app", "latest", config=job, check=0)  # checksums alone cannot see it
    proc = vigil("verify", "app", "latest", "--deep", config=job, check=1)
    assert "3 damaged entries" in proc.stdout, proc.stdout
    assert f"{changed}: content differs from the index" in proc.stdout
    assert f"{dropped}: missing from the archive" in proc.stdout
    assert f"{regular[0]}.extra: in the archive but not in the index" in proc.stdout
    # restore checks each file against the index as it goes, and refuses the changed one.
    restore = vigil("restore", "app", "latest", "--source", "app", "--to", str(tmp_path / "r"), config=job, check=1)
    assert f"{changed}: content does not match its SHA-256 in the index" in restore.stderr
    assert not (tmp_path / "r" / changed).exists()


def test_large_file_changing_during_backup_restores_its_last_copy(tmp_path, make_job, app_tree):
    # Over 16 MiB a file is streamed; when it changes while read it is archived
    # again right after, and tar extraction keeps the last copy. The index holds
    # that last copy's SHA-256: restore and deep verify must accept the earlier
    # copies being different.
    growing = app_tree / "storage/logs/big.log"
    size = 20 << 20
    growing.write_bytes(b"y" * size)
    job = make_job(files_job_body(app_tree, tmp_path / "backups"))
    with appending(growing):
        proc = vigil("run", config=job, check=0)
    assert "storage/logs/big.log" in proc.stderr and "changed while being read" in proc.stderr
    [backup] = committed(tmp_path / "backups")
    with tarfile.open(fileobj=io.BytesIO(zstandard.ZstdDecompressor().stream_reader(
            (backup / "files-app.tar.zst").read_bytes()).read()), mode="r:") as tar:
        copies = [m for m in tar.getmembers() if m.name == "storage/logs/big.log"]
    assert len(copies) > 1  # the case under test: several copies in the archive

    vigil("verify", "app", "latest", "--deep", config=job, check=0)
    target = tmp_path / "restored"
    vigil("restore", "app", "latest", "--source", "app", "--to", str(target), config=job, check=0)
    restored = (target / "storage/logs/big.log").read_bytes()
    assert len(restored) == copies[-1].size and restored.startswith(b"y" * size)


def test_names_that_are_not_utf8_round_trip(tmp_path, make_job):
    # Old uploads often carry Latin-1 names: bytes that are not UTF-8.
    src = tmp_path / "www"
    src.mkdir()
    root = os.fsencode(src)
    with open(os.path.join(root, b"caf\xe9.txt"), "wb") as fh:
        fh.write(b"latin-1 name")
    os.mkdir(os.path.join(root, b"d\xff"))
    with open(os.path.join(root, b"d\xff", b"x"), "wb") as fh:
        fh.write(b"inside")
    os.symlink(b"caf\xe9.txt", os.path.join(root, b"link\xe9"))
    job = make_job(files_job_body(src, tmp_path / "backups"))
    vigil("run", config=job, check=0)
    [backup] = committed(tmp_path / "backups")
    index = zstandard.ZstdDecompressor().stream_reader((backup / "index-app.jsonl.zst").read_bytes()).read()
    index.decode("utf-8")  # still valid UTF-8 JSON lines, whatever the names
    assert {json.loads(line)["path"] for line in index.splitlines()} == \
        {os.fsdecode(n) for n in (b"caf\xe9.txt", b"d\xff", b"d\xff/x", b"link\xe9")}

    vigil("verify", "app", "latest", "--deep", config=job, check=0)
    target = tmp_path / "restored"
    vigil("restore", "app", "latest", "--source", "app", "--to", str(target), config=job, check=0)
    assert sorted(os.listdir(os.fsencode(target))) == [b"caf\xe9.txt", b"d\xff", b"link\xe9"]
    with open(os.path.join(os.fsencode(target), b"d\xff", b"x"), "rb") as fh:
        assert fh.read() == b"inside"
    assert os.readlink(os.path.join(os.fsencode(target), b"link\xe9")) == b"caf\xe9.txt"


def test_tree_deeper_than_the_recursion_limit(tmp_path, make_job):
    # 1200 nested directories: nothing in the walk, verify or restore may recurse per level.
    src = tmp_path / "www"
    src.mkdir()
    deep = str(src)
    for _ in range(1200):  # os.makedirs and pathlib recurse per level themselves
        deep += "/d"
        os.mkdir(deep)
    with open(deep + "/leaf.txt", "w") as fh:
        fh.write("at the bottom")
    job = make_job(files_job_body(src, tmp_path / "backups"))
    target = tmp_path / "restored"
    try:
        vigil("run", config=job, check=0)
        vigil("verify", "app", "latest", "--deep", config=job, check=0)
        vigil("restore", "app", "latest", "--source", "app", "--to", str(target), config=job, check=0)
        with open(str(target) + "/d" * 1200 + "/leaf.txt") as fh:
            assert fh.read() == "at the bottom"
    finally:
        for tree in (src, target):
            if tree.exists():
                remove_deep_tree(tree)


def test_a_name_the_file_system_refuses_is_reported_with_the_target_path(tmp_path, make_job):
    """A member name too long for the target's file system fails the restore with a line
    naming the target directory, and leaves nothing behind."""
    dest = tmp_path / "backups"
    craft_backup(dest, [member("ok.txt"), member("x" * 300 + ".txt")])
    job = make_job(files_job_body(tmp_path / "src", dest))
    target = tmp_path / "target"
    proc = vigil("restore", "app", "latest", "--source", "app", "--to", str(target), config=job)
    assert proc.returncode == 1, proc.stderr
    assert f"cannot restore into {target}: " in proc.stderr and "File name too long" in proc.stderr
    assert "object at 0x" not in proc.stderr
    assert not target.exists()


def test_a_damaged_file_whose_name_is_not_utf8_is_reported_escaped_and_recorded(tmp_path, make_job):
    src = tmp_path / "src"
    src.mkdir()
    (src / "ok.txt").write_text("ok\n")
    Path(os.fsdecode(os.fsencode(src) + b"/caf\xe9.txt")).write_bytes(b"hello\n" * 100)
    dest = tmp_path / "backups"
    job = make_job(files_job_body(src, dest))
    vigil("run", config=job, check=0)
    [backup] = committed(dest)
    # The index now disagrees with the archive about the file with the Latin-1 name.
    index = backup / "index-app.jsonl.zst"
    lines = zstandard.ZstdDecompressor().decompressobj().decompress(index.read_bytes()).decode().splitlines()
    entries = [json.loads(line) for line in lines]
    for e in entries:
        if e["path"].startswith("caf") and e.get("sha256"):
            e["sha256"] = "0" * 64
    data = zstandard.ZstdCompressor().compress(("\n".join(json.dumps(e) for e in entries) + "\n").encode())
    index.write_bytes(data)
    manifest = json.loads((backup / "manifest.json").read_text())
    for art in manifest["artifacts"]:
        if art["name"] == index.name:
            art["size"], art["sha256"] = len(data), hashlib.sha256(data).hexdigest()
    (backup / "manifest.json").write_text(json.dumps(manifest))

    proc = vigil("verify", "app", "latest", "--deep", config=job)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr and "internal error" not in proc.stderr, proc.stderr
    assert "caf\\xe9.txt: content differs from the index" in proc.stdout
    health = vigil("health", config=job)  # the verdict was recorded in the journal
    assert health.returncode == 2 and "found damaged by verify" in health.stdout, health.stdout
