"""Incremental file backups as a user sees them (SPEC §11): what is stored, what restores,
what breaks a chain and what the next run does about it."""

from __future__ import annotations

import json
import os
import re
import subprocess
import tarfile
import time
from pathlib import Path

import zstandard
from helpers import VIGIL, age_keygen, flip_byte, open_files, tree_listing, vigil, vigil_json
from test_s3 import s3_dest

DOCS = Path(__file__).resolve().parents[2] / "docs"


def files_job(src: Path, dest: Path, extra: str = "") -> str:
    return f'[[source]]\ntype = "files"\nname = "app"\npath = "{src}"\n' \
           f'[[destination]]\ntype = "local"\nname = "local"\npath = "{dest}"\n' + extra


def backups(job: Path) -> list[dict]:
    """`vigil list --json`, oldest first."""
    return list(reversed(vigil_json("list", config=job)))


def manifest(dest: Path, backup_id: str) -> dict:
    return json.loads((dest / "app" / backup_id / "manifest.json").read_text())


def members(archive: Path) -> list[str]:
    with zstandard.open(archive, "rb") as fh, tarfile.open(fileobj=fh, mode="r|") as tar:
        return [m.name for m in tar]


def mutate_a_day(tree: Path, day: int) -> None:
    """Edits, a new file, a deletion and a chmod: what a day does to a web root."""
    (tree / "config" / "app.php").write_text(f"<?php return ['day' => {day}];\n")
    (tree / "public").mkdir(exist_ok=True)
    (tree / "public" / f"upload-{day}.txt").write_text(f"uploaded on day {day}\n" * 50)
    old = tree / "public" / f"upload-{day - 1}.txt"
    if old.exists():
        old.unlink()
    (tree / "config" / "File00005.php").chmod(0o600 if day % 2 else 0o644)


def test_a_chain_stores_changes_and_restores_every_state_exactly(tmp_path, make_job, app_tree):
    dest = tmp_path / "backups"
    job = make_job(files_job(app_tree, dest))
    states = []
    for day in range(4):
        if day:
            mutate_a_day(app_tree, day)
        vigil("run", config=job, check=0)
        states.append(tree_listing(app_tree))
    rows = backups(job)
    assert [r["kind"] for r in rows] == ["full", "incremental", "incremental", "incremental"]
    assert [r["base"] for r in rows] == [None] + [r["id"] for r in rows[:-1]]
    last = manifest(dest, rows[-1]["id"])
    assert last["chain"] == [r["id"] for r in rows[:-1]]

    # The incremental's archive holds what changed (and every directory), not the unchanged files.
    stored = members(dest / "app" / rows[-1]["id"] / "files-app.tar.zst")
    assert "config/app.php" in stored and "public/upload-3.txt" in stored
    untouched = str(next(p for p in sorted((app_tree / "vendor").rglob("*")) if p.is_file()).relative_to(app_tree))
    assert "public/upload-2.txt" not in stored and untouched not in stored
    assert rows[-1]["size"] < rows[0]["size"] / 3
    art = next(a for a in last["artifacts"] if a["name"] == "files-app.tar.zst")
    assert art["unchanged"] > 0 and art["state_bytes"] > art["bytes"]

    for row, want in zip(rows, states, strict=True):
        target = tmp_path / f"restored-{row['id']}"
        vigil("restore", "app", row["id"], "--source", "app", "--to", str(target), config=job, check=0)
        assert tree_listing(target) == want
    assert not (tmp_path / f"restored-{rows[-1]['id']}" / "public" / "upload-2.txt").exists()  # deleted: absent

    # --include on a chain: only the matching part of that state.
    part = tmp_path / "part"
    vigil("restore", "app", "latest", "--source", "app", "--to", str(part), "--include", "public/", config=job,
          check=0)
    assert sorted(p.name for p in (part / "public").iterdir()) == sorted(
        p.name for p in (app_tree / "public").iterdir())
    assert not (part / "config").exists()

    verify = vigil("verify", "latest", "--deep", config=job, check=0)
    assert all(r["id"] in verify.stdout for r in rows)  # the chain's artifacts are checked too
    assert f"{rows[-1]['id']} (incremental on {rows[-2]['id']})" in vigil("report", config=job, check=0).stdout


def test_run_full_and_a_health_that_is_not_fooled_by_small_incrementals(tmp_path, make_job, app_tree):
    dest = tmp_path / "backups"
    job = make_job(files_job(app_tree, dest))
    vigil("run", config=job, check=0)
    vigil("run", config=job, check=0)  # nothing changed: a tiny incremental
    assert vigil("health", config=job).returncode == 0  # not "less than half the previous one"
    proc = vigil("run", "--full", config=job, check=0)
    assert "full backup: --full given" in proc.stderr
    assert [r["kind"] for r in backups(job)] == ["full", "incremental", "full"]


def test_a_broken_chain_fails_verify_and_restore_and_the_next_run_is_full(tmp_path, make_job, app_tree):
    dest = tmp_path / "backups"
    job = make_job(files_job(app_tree, dest))
    for day in range(3):
        mutate_a_day(app_tree, day + 1)
        vigil("run", config=job, check=0)
    full, middle, newest = (r["id"] for r in backups(job))

    # The middle backup's archive is corrupted: verify of the newest names it, restore writes nothing.
    flip_byte(dest / "app" / middle / "files-app.tar.zst")
    proc = vigil("verify", "app", newest, config=job, check=1)
    assert f"{middle}/files-app.tar.zst: checksum mismatch" in proc.stdout and f"base of {newest}" in proc.stdout
    target = tmp_path / "restored"
    proc = vigil("restore", "app", newest, "--source", "app", "--to", str(target), config=job, check=1)
    assert "Traceback" not in proc.stderr and middle in proc.stderr.splitlines()[-1]
    assert not target.exists()
    # Verify found it damaged: the next run builds on nothing of it.
    assert "full backup: verify found" in vigil("run", config=job, check=0).stderr
    assert backups(job)[-1]["kind"] == "full"

    # The full's archive is deleted outright: everything built on it is a damaged backup.
    (dest / "app" / full / "files-app.tar.zst").unlink()
    proc = vigil("verify", "app", middle, config=job, check=1)
    assert f"{full}/files-app.tar.zst" in proc.stdout and f"base of {middle}" in proc.stdout
    (dest / "app" / full / "manifest.json").unlink()  # now only a partial: the chain is broken
    rows = vigil_json("list", config=job)
    broken = {r["id"]: r for r in rows if r["status"] == "damaged"}
    assert set(broken) == {middle, newest} and f"base {full} is missing" in broken[middle]["reason"]
    proc = vigil("restore", "app", middle, "--source", "app", "--to", str(target), config=job, check=1)
    assert "chain broken" in proc.stderr.splitlines()[-1] and not target.exists()


def test_retention_keeps_every_chain_a_kept_backup_needs(tmp_path, make_job, app_tree):
    dest = tmp_path / "backups"
    body = files_job(app_tree, dest, "[retention]\nkeep_last = 2\n")
    job = make_job(body)
    for day in range(4):
        mutate_a_day(app_tree, day + 1)
        vigil("run", config=job, check=0)
    ids = [r["id"] for r in backups(job)]
    assert len(ids) == 4  # the two newest need the whole chain
    dry = vigil("prune", "--dry-run", config=job, check=0)
    assert f"base of {ids[-1]}" in dry.stdout
    vigil("run", "--full", config=job, check=0)  # a new full: the old chain is needed by one backup only
    mutate_a_day(app_tree, 9)
    vigil("run", config=job, check=0)
    rows = backups(job)
    assert [r["kind"] for r in rows] == ["full", "incremental"]  # the old chain went in one prune
    vigil("verify", "latest", "--deep", config=job, check=0)


def test_encrypted_to_recipients_only_needs_the_local_index_cache(tmp_path, make_job, app_tree):
    key = tmp_path / "key.txt"
    recipient = age_keygen(key)
    dest = tmp_path / "vault"
    job = make_job(files_job(app_tree, dest, f'[encryption]\nrecipients = ["{recipient}"]\n'))
    vigil("run", config=job, check=0)
    mutate_a_day(app_tree, 1)
    assert "incremental backup on base" in vigil("run", config=job, check=0).stderr
    cache = tmp_path / "state" / "index-cache" / "app"
    assert [p.stat().st_mode & 0o777 for p in cache.rglob("*.zst")] == [0o600]
    # Without the cache, the stored index cannot be read without a key: a full backup, no failure.
    for p in sorted(cache.rglob("*"), reverse=True):
        p.unlink() if p.is_file() else p.rmdir()
    mutate_a_day(app_tree, 2)
    proc = vigil("run", config=job, check=0)
    assert "full backup: no cached index of base" in proc.stderr and "encrypted" in proc.stderr
    # A cache that does not match the manifest is not trusted either.
    next(cache.rglob("*.zst")).write_bytes(zstandard.compress(b'{"path": "x", "type": "file"}\n'))
    mutate_a_day(app_tree, 3)
    assert "full backup: no cached index" in vigil("run", config=job, check=0).stderr
    assert [r["kind"] for r in backups(job)] == ["full", "incremental", "full", "full"]
    target = tmp_path / "restored"
    job.write_text(job.read_text() + f'identity_file = "{key}"\n')
    mutate_a_day(app_tree, 4)
    vigil("run", config=job, check=0)
    vigil("restore", "app", "latest", "--source", "app", "--to", str(target), config=job, check=0)
    assert tree_listing(target) == tree_listing(app_tree)


def test_unencrypted_index_is_fetched_when_the_cache_is_gone(tmp_path, make_job, app_tree):
    dest = tmp_path / "backups"
    job = make_job(files_job(app_tree, dest))
    vigil("run", config=job, check=0)
    subprocess.run(["rm", "-r", str(tmp_path / "state" / "index-cache")], check=True)
    mutate_a_day(app_tree, 1)
    assert "incremental backup on base" in vigil("run", config=job, check=0).stderr


def test_a_base_missing_on_one_destination_makes_a_full_backup_on_both(tmp_path, make_job, app_tree, s3_server,
                                                                        s3_bucket):
    s3, bucket = s3_bucket
    job = make_job(files_job(app_tree, tmp_path / "local") + s3_dest(s3_server, bucket))
    vigil("run", config=job, check=0)
    mutate_a_day(app_tree, 1)
    assert "incremental backup on base" in vigil("run", config=job, check=0).stderr
    newest = vigil_json("list", config=job)[0]["id"]
    for o in s3.list_objects_v2(Bucket=bucket, Prefix=f"backups/app/{newest}/")["Contents"]:
        s3.delete_object(Bucket=bucket, Key=o["Key"])
    mutate_a_day(app_tree, 2)
    proc = vigil("run", config=job, check=0)
    assert f"full backup: base {newest} missing on offsite" in proc.stderr
    rows = [r for r in vigil_json("list", config=job) if r["id"] not in (newest,)]
    assert {(r["destination"], r["kind"]) for r in rows[:2]} == {("local", "full"), ("offsite", "full")}
    target = tmp_path / "restored"
    vigil("restore", "app", "latest", "--source", "app", "--to", str(target), "--destination", "offsite",
          config=job, check=0)
    assert tree_listing(target) == tree_listing(app_tree)


def test_full_every_starts_a_new_chain(tmp_path, make_job, app_tree):
    dest = tmp_path / "backups"
    job = make_job(files_job(app_tree, dest, '[files]\nfull_every = "1s"\n'))
    vigil("run", config=job, check=0)
    time.sleep(1.1)
    proc = vigil("run", config=job, check=0)
    assert "is older than files.full_every (1s)" in proc.stderr
    job.write_text(job.read_text().replace('full_every = "1s"', "incremental = false"))
    assert "files.incremental is false" in vigil("run", config=job, check=0).stderr
    assert {r["kind"] for r in backups(job)} == {"full"}
    job.write_text(job.read_text().replace("incremental = false", 'full_every = "0s"'))
    proc = vigil("run", config=job, check=2)
    assert "full_every" in proc.stderr and "Traceback" not in proc.stderr


def _by_hand_script() -> str:
    text = (DOCS / "restore.md").read_text()
    found = re.search(r"```sh\n(# restore an incremental backup by hand\n.*?)```", text, re.S)
    assert found, "docs/restore.md lost its by-hand procedure"
    return found.group(1)


def test_the_by_hand_procedure_of_the_docs_restores_what_vigil_restores(tmp_path, make_job, app_tree):
    key = tmp_path / "key.txt"
    recipient = age_keygen(key)
    dest = tmp_path / "vault"
    job = make_job(files_job(app_tree, dest, f'[encryption]\nrecipients = ["{recipient}"]\nidentity_file = "{key}"\n'))
    (app_tree / "public").mkdir()
    (app_tree / "public" / "upload-0.txt").write_text("will be deleted\n")
    for day in range(3):
        if day:
            mutate_a_day(app_tree, day)
        vigil("run", config=job, check=0)
    newest = vigil_json("list", config=job)[0]["id"]
    by_vigil, by_hand = tmp_path / "by-vigil", tmp_path / "by-hand"
    vigil("restore", "app", newest, "--source", "app", "--to", str(by_vigil), config=job, check=0)
    by_hand.mkdir()
    env = {**os.environ, "BACKUPS": str(dest / "app"), "ID": newest, "SRC": "app", "TARGET": str(by_hand),
           "IDENTITY": str(key)}
    subprocess.run(["sh", "-c", _by_hand_script()], env=env, check=True, timeout=120)
    assert tree_listing(by_hand) == tree_listing(by_vigil) == tree_listing(app_tree)
    assert not (by_hand / "public" / "upload-0.txt").exists()


def test_a_database_restored_from_an_incremental_backup_is_that_backups_dump(tmp_path, make_job, app_tree):
    db = tmp_path / "shop.sqlite"
    subprocess.run(["sqlite3", str(db), "CREATE TABLE t (day); INSERT INTO t VALUES ('day 0')"], check=True)
    job = make_job(files_job(app_tree, tmp_path / "backups")
                   + f'[[source]]\ntype = "sqlite"\nname = "db"\npath = "{db}"\n')
    vigil("run", config=job, check=0)
    subprocess.run(["sqlite3", str(db), "INSERT INTO t VALUES ('day 1')"], check=True)
    mutate_a_day(app_tree, 1)
    vigil("run", config=job, check=0)
    assert backups(job)[-1]["kind"] == "incremental"
    out = tmp_path / "restored.sqlite"
    vigil("restore", "app", "latest", "--source", "db", "--to-file", str(out), config=job, check=0)
    rows = subprocess.run(["sqlite3", str(out), "SELECT day FROM t ORDER BY day"], capture_output=True, text=True,
                          check=True).stdout.split()
    assert rows == ["day", "0", "day", "1"]


def test_a_volatile_file_that_changed_while_read_is_read_again_next_time(tmp_path, make_job):
    src = tmp_path / "src"
    (src / "logs").mkdir(parents=True)
    log = src / "logs" / "app.log"
    with open(log, "wb") as fh:
        fh.write(b"AAAA")
        fh.truncate(256 << 20)  # long enough to be written to while it is read
    job = make_job(files_job(src, tmp_path / "backups").replace('path = "' + str(src) + '"\n',
                                                             'path = "' + str(src) + '"\nvolatile = ["logs/"]\n', 1))
    proc = subprocess.Popen([VIGIL, "--config", str(job), "run"], stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.time() + 60
        while not any(p.endswith("logs/app.log") for p in open_files(proc.pid)):
            assert time.time() < deadline and proc.poll() is None, "the run never opened the log"
            time.sleep(0.005)
        with open(log, "r+b") as fh:  # same size: only the times tell
            fh.write(b"BBBB")
        _, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, err
    vigil("run", config=job, check=0)  # the log is stable now
    assert backups(job)[-1]["kind"] == "incremental"
    target = tmp_path / "restored"
    vigil("restore", "app", "latest", "--source", "app", "--to", str(target), "--include", "logs/", config=job,
          check=0)
    with open(target / "logs" / "app.log", "rb") as fh:
        assert fh.read(4) == b"BBBB"


def test_prune_keeps_what_a_backup_with_a_broken_chain_still_holds(tmp_path, make_job, app_tree):
    dest = tmp_path / "backups"
    job = make_job(files_job(app_tree, dest, "[retention]\nkeep_last = 1\n"))
    for day in range(3):
        mutate_a_day(app_tree, day + 1)
        vigil("run", config=job, check=0)
    full, middle, newest = (r["id"] for r in backups(job))
    (dest / "app" / middle / "manifest.json").write_text("{")  # damaged: the newest's chain is broken
    vigil("run", "--full", config=job, check=0)
    proc = vigil("prune", "--dry-run", config=job, check=0)
    assert f"base of {newest} (damaged)" in proc.stdout
    vigil("prune", config=job, check=0)
    assert (dest / "app" / full / "manifest.json").exists()  # the newest still needs it once its base is mended


def test_neither_a_stray_folder_nor_a_clock_that_went_back_breaks_a_run(tmp_path, make_job, app_tree):
    dest = tmp_path / "backups"
    job = make_job(files_job(app_tree, dest))
    vigil("run", config=job, check=0)
    [row] = backups(job)
    # A backup made while the clock was an hour ahead.
    future = "20991231T235959Z-" + row["id"][-6:]
    doc = manifest(dest, row["id"])
    doc.update(id=future, started_at="2099-12-31T23:59:59.000Z")
    (dest / "app" / row["id"]).rename(dest / "app" / future)
    (dest / "app" / future / "manifest.json").write_text(json.dumps(doc))
    (dest / "app" / "20241399T999999Z-abcdef").mkdir()  # the shape of an id, but no date
    (dest / "app" / "20241399T999999Z-abcdef" / "manifest.json").write_text("{}")
    proc = vigil("run", config=job, check=0)
    assert f"full backup: base {future} is newer than this run" in proc.stderr
    assert vigil("verify", "latest", config=job).returncode == 0 or "Traceback" not in proc.stderr
    target = tmp_path / "restored"
    newest = [r for r in vigil_json("list", config=job) if r["status"] == "complete" and r["id"] != future][0]
    vigil("restore", "app", newest["id"], "--source", "app", "--to", str(target), config=job, check=0)
    assert tree_listing(target) == tree_listing(app_tree)


def test_an_index_cache_that_cannot_be_written_costs_no_backup(tmp_path, make_job, app_tree):
    job = make_job(files_job(app_tree, tmp_path / "backups"))
    (tmp_path / "state").mkdir()
    (tmp_path / "state" / "index-cache").write_text("not a directory")
    proc = vigil("run", config=job, check=0)
    assert "no local index cache" in proc.stderr
    mutate_a_day(app_tree, 1)
    proc = vigil("run", config=job, check=0)  # nowhere to keep the base's index: a full backup, said why
    assert "full backup: the base's index cannot be kept locally: cannot write" in proc.stderr
    target = tmp_path / "restored"
    vigil("restore", "app", "latest", "--source", "app", "--to", str(target), config=job, check=0)
    assert tree_listing(target) == tree_listing(app_tree)


def test_an_index_that_hides_a_file_from_its_archive_is_damage_not_a_smaller_restore(tmp_path, make_job, app_tree):
    """A chain's older archives are matched by the text of the index lines; a line that says the
    same in other JSON (a destination may hand back anything) must not quietly drop a file."""
    import hashlib

    dest = tmp_path / "backups"
    job = make_job(files_job(app_tree, dest))
    vigil("run", config=job, check=0)
    mutate_a_day(app_tree, 1)
    vigil("run", config=job, check=0)
    full, newest = (r["id"] for r in backups(job))
    folder = dest / "app" / newest
    with zstandard.open(folder / "index-app.jsonl.zst", "rb") as fh:
        lines = fh.read().decode().splitlines(True)
    i = next(n for n, line in enumerate(lines) if f'"in": "{full}"' in line)
    lines[i] = lines[i].replace(f'"in": "{full}"', '"in": "' + "".join(f"\\u{ord(c):04x}" for c in full) + '"')
    plain = "".join(lines).encode()
    stored = zstandard.compress(plain)
    (folder / "index-app.jsonl.zst").write_bytes(stored)
    doc = manifest(dest, newest)
    art = next(a for a in doc["artifacts"] if a["name"] == "index-app.jsonl.zst")
    art.update(size=len(stored), sha256=hashlib.sha256(stored).hexdigest(),
               content_sha256=hashlib.sha256(plain).hexdigest())
    (folder / "manifest.json").write_text(json.dumps(doc))
    target = tmp_path / "restored"
    proc = vigil("restore", "app", newest, "--source", "app", "--to", str(target), config=job, check=1)
    assert f"assigns to backup {full} are not written as vigil writes them" in proc.stderr
    assert not target.exists()
    assert "not written as vigil writes them" in vigil("verify", newest, "--deep", config=job, check=1).stdout
