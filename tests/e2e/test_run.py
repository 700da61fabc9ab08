"""`vigil run`, `list` and `runs` as a user runs them: real processes, real tar and zstd."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import sqlite3
import stat
import subprocess
import tarfile
import textwrap
import threading
import time
from pathlib import Path

import pytest
import zstandard
from helpers import (
    VIGIL,
    appending,
    committed,
    email_notify,
    files_and_sqlite,
    files_job_body,
    flip_byte,
    open_files,
    tree_listing,
    vigil,
    vigil_json,
    wait_for_step,
)


def extract_with_tar(archive: Path, into: Path, tar: str = "tar") -> None:
    into.mkdir()
    subprocess.run(f"zstd -dc < '{archive}' | {tar} -x -f - -C '{into}'", shell=True, check=True)


def test_round_trip_with_real_tar_and_zstd(tmp_path, make_job, app_tree):
    # The awkward parts on top of the generated tree.
    long_dir = app_tree / ("d" * 120) / ("e" * 120)
    long_dir.mkdir(parents=True)
    (long_dir / ("f" * 200 + ".txt")).write_text("long name\n")
    (app_tree / "ünïcödé — 名前.txt").write_text("unicode\n")
    old = app_tree / "old.txt"
    old.write_text("before 1970\n")
    os.utime(old, (-86400 * 365, -86400 * 365))
    future = app_tree / "future.txt"
    future.write_text("after 2038\n")
    os.utime(future, (2**33, 2**33))
    (app_tree / "script.sh").write_text("#!/bin/sh\n")
    (app_tree / "script.sh").chmod(0o750)
    (app_tree / "empty-dir").mkdir()
    os.symlink("/etc/hostname", app_tree / "absolute-link")
    with open(app_tree / "sparse.img", "wb") as fh:  # holes read as zeros: stored as such
        fh.truncate(8 << 20)
        fh.seek(3 << 20)
        fh.write(b"data between two holes")

    dest = tmp_path / "backups"
    job = make_job(files_job_body(app_tree, dest))
    vigil("run", config=job, check=0)

    [backup] = committed(dest)
    manifest = json.loads((backup / "manifest.json").read_text())
    # sha256sum of every artifact matches the manifest, and nothing is unlisted.
    listed = {a["name"]: a["sha256"] for a in manifest["artifacts"]}
    assert set(listed) == {p.name for p in backup.iterdir()} - {"manifest.json"}
    out = subprocess.run(["sha256sum", *sorted(listed)], cwd=backup, capture_output=True, text=True, check=True)
    for line in out.stdout.splitlines():
        digest, name = line.split()
        assert listed[name] == digest

    for tool in ("tar", "bsdtar"):
        if not shutil.which(tool):
            continue
        restored = tmp_path / f"restored-{tool}"
        extract_with_tar(backup / "files-app.tar.zst", restored, tool)
        assert tree_listing(restored) == tree_listing(app_tree), tool
        # Hard links come back as links to one inode.
        a, b = restored / "config/app.hardlink.php", next(
            p for p in (restored / "config").glob("*.php") if p.name != "app.hardlink.php"
            and p.stat().st_ino == (restored / "config/app.hardlink.php").stat().st_ino)
        assert a.stat().st_nlink == 2 and a.read_bytes() == b.read_bytes()

    # Python's tarfile reads it too, member names relative, no leading ./ or /.
    with zstandard.open(backup / "files-app.tar.zst", "rb") as fh, tarfile.open(fileobj=fh, mode="r|") as tar:
        names = [m.name for m in tar]
    assert names and all(not n.startswith(("/", "./")) for n in names)

    # The index lists every entry with the SPEC's fields.
    with zstandard.open(backup / "index-app.jsonl.zst", "rt") as fh:
        index = [json.loads(line) for line in fh]
    assert len(index) == len(names)
    entry = next(e for e in index if e["path"] == "script.sh")
    assert entry["type"] == "file" and entry["mode"] == 0o750 and entry["changed_during_read"] is False
    assert entry["sha256"] == hashlib.sha256(b"#!/bin/sh\n").hexdigest()
    assert {"path", "type", "size", "mode", "mtime", "sha256", "changed_during_read"} <= set(entry)


def test_sqlite_copy_round_trip_while_written(tmp_path, make_job):
    db = tmp_path / "app.sqlite"
    conn = sqlite3.connect(db)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("CREATE TABLE ledger (id INTEGER PRIMARY KEY, amount INTEGER)")
    conn.execute("CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT)")
    conn.executemany("INSERT INTO users (name) VALUES (?)", [(f"user {i} ü",) for i in range(500)])
    conn.commit()
    conn.close()
    stop = threading.Event()

    def writer() -> None:
        # Every transaction keeps the ledger summing to zero.
        w = sqlite3.connect(db, timeout=30)
        while not stop.is_set():
            w.execute("BEGIN")
            w.execute("INSERT INTO ledger (amount) VALUES (100)")
            w.execute("INSERT INTO ledger (amount) VALUES (-100)")
            w.execute("COMMIT")
        w.close()

    t = threading.Thread(target=writer)
    t.start()
    time.sleep(0.2)
    dest = tmp_path / "backups"
    job = make_job(f"""
        [[source]]
        type = "sqlite"
        name = "db"
        path = "{db}"
        [[destination]]
        type = "local"
        path = "{dest}"
    """)
    try:
        vigil("run", config=job, check=0)
    finally:
        stop.set()
        t.join()
    [backup] = committed(dest)
    copy = tmp_path / "copy.sqlite"
    subprocess.run(f"zstd -dc < '{backup / 'db-db.sqlite.zst'}' > '{copy}'", shell=True, check=True)
    c = sqlite3.connect(copy)
    assert c.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    assert c.execute("SELECT coalesce(sum(amount), 0) FROM ledger").fetchone()[0] == 0
    assert c.execute("SELECT count(*) FROM users").fetchone()[0] == 500
    manifest = json.loads((backup / "manifest.json").read_text())
    [art] = [a for a in manifest["artifacts"] if a["name"] == "db-db.sqlite.zst"]
    assert art["tables"]["users"] == 500
    assert art["tables"]["ledger"] == c.execute("SELECT count(*) FROM ledger").fetchone()[0]


def test_three_simultaneous_runs_one_backup(tmp_path, make_job, app_tree):
    dest = tmp_path / "backups"
    # The before hook keeps the first run holding the lock while the others try.
    job = make_job(files_job_body(app_tree, dest) + '[hooks]\nbefore = [["sleep", "5"]]\n')
    procs = [subprocess.Popen([VIGIL, "--config", str(job), "run"], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for _ in range(3)]
    results = [(p.wait(timeout=60), p.stderr.read()) for p in procs]
    codes = sorted(code for code, _ in results)
    assert codes == [0, 75, 75], results
    assert len(committed(dest)) == 1
    for code, err in results:
        if code == 75:
            assert "already running" in err and "pid" in err
    runs = vigil_json("runs", config=job)
    assert sorted(r["outcome"] for r in runs) == ["skipped", "skipped", "success"]
    winner = next(r for r in runs if r["outcome"] == "success")
    for r in runs:
        if r["outcome"] == "skipped":
            assert winner["run_id"] in r["error"] and str(winner["pid"]) in r["error"]
            assert r["started_by"]  # who started it is recorded for every attempt


def test_file_appended_during_run_is_a_warning_not_a_failure(tmp_path, make_job, app_tree):
    growing = app_tree / "storage/logs/worker.log"
    size = 15 << 20  # read whole (under 16 MiB), and slow enough that every read sees appends
    growing.write_bytes(b"x" * size)
    dest = tmp_path / "backups"
    job = make_job(files_job_body(app_tree, dest))
    with appending(growing):
        proc = vigil("run", config=job, check=0)
    assert "storage/logs/worker.log" in proc.stderr
    [backup] = committed(dest)
    manifest = json.loads((backup / "manifest.json").read_text())
    assert any("storage/logs/worker.log" in w and "changed" in w for w in manifest["warnings"])
    [run] = vigil_json("runs", config=job)
    assert run["outcome"] == "success"
    assert any("storage/logs/worker.log" in w for w in run["warnings"])
    extract_with_tar(backup / "files-app.tar.zst", tmp_path / "out")
    assert (tmp_path / "out/storage/logs/worker.log").stat().st_size >= size


def test_volatile_files_are_stored_without_warning(tmp_path, make_job, app_tree):
    growing = app_tree / "storage/logs/live.log"
    growing.write_bytes(b"x" * (1 << 20))
    dest = tmp_path / "backups"
    job = make_job(files_job_body(app_tree, dest, 'volatile = ["storage/logs/*.log"]'))
    with appending(growing):
        vigil("run", config=job, check=0)
    [backup] = committed(dest)
    assert json.loads((backup / "manifest.json").read_text())["warnings"] == []
    extract_with_tar(backup / "files-app.tar.zst", tmp_path / "out")
    assert (tmp_path / "out/storage/logs/live.log").stat().st_size >= 1 << 20


def test_destination_and_state_inside_source_are_excluded(tmp_path, app_tree, make_job):
    dest = app_tree / "storage/backups"
    state = app_tree / "storage/vigil-state"
    job = make_job(files_job_body(app_tree, dest), state_dir=state)
    vigil("run", config=job, check=0)
    vigil("run", config=job, check=0)  # the second run sees the first backup inside the tree
    backups = committed(dest)
    assert len(backups) == 2
    manifest = json.loads((backups[-1] / "manifest.json").read_text())
    assert manifest["warnings"] == []
    with zstandard.open(backups[-1] / "files-app.tar.zst", "rb") as fh, tarfile.open(fileobj=fh, mode="r|") as tar:
        names = [m.name for m in tar]
    assert not any(n.startswith(("storage/backups", "storage/vigil-state")) for n in names)
    assert "storage/logs" in [n.rstrip("/") for n in names]


def test_excludes_are_gitignore_style(tmp_path, make_job, app_tree):
    (app_tree / "storage/framework/cache/data").mkdir(parents=True)
    (app_tree / "storage/framework/cache/data/x").write_text("cached")
    (app_tree / "keep.log").write_text("kept")
    dest = tmp_path / "backups"
    extra = 'exclude = ["vendor/", "node_modules/", "storage/framework/cache/", "/keep.log", "*.json"]'
    job = make_job(files_job_body(app_tree, dest, extra))
    vigil("run", config=job, check=0)
    [backup] = committed(dest)
    with zstandard.open(backup / "files-app.tar.zst", "rb") as fh, tarfile.open(fileobj=fh, mode="r|") as tar:
        names = [m.name for m in tar]
    assert not [n for n in names if n.startswith(("vendor", "node_modules", "storage/framework/cache/"))]
    assert "keep.log" not in names and not [n for n in names if n.endswith(".json")]
    assert any(n.startswith("app/") for n in names)


def test_missing_source_root_fails_at_its_step(tmp_path, make_job):
    dest = tmp_path / "backups"
    missing = make_job(files_job_body(tmp_path / "nope", dest), name="gone")
    proc = vigil("run", config=missing, check=1)
    assert "does not exist" in proc.stderr
    [run] = vigil_json("runs", config=missing)
    assert run["outcome"] == "failed" and run["step"] == "source:app"
    assert not committed(dest, "gone")


@pytest.mark.parametrize("sig", ["SIGTERM", "SIGINT", "SIGHUP"])
def test_signal_during_source_leaves_nothing_committed(tmp_path, make_job, slow_tree, sig):
    import signal

    dest = tmp_path / "backups"
    job = make_job(files_job_body(slow_tree, dest))
    proc = subprocess.Popen([VIGIL, "--config", str(job), "run"], stderr=subprocess.PIPE, text=True)
    wait_for_step(job, "source:")
    proc.send_signal(getattr(signal, sig))
    assert proc.wait(timeout=60) == 1
    assert not committed(dest)
    assert not [p for p in (dest / "app").iterdir() if p.name.startswith(".partial-")]
    assert vigil_json("list", config=job) == []
    [run] = vigil_json("runs", config=job)
    assert run["outcome"] == "interrupted" and sig in run["error"] and run["step"] == "source:app"


def test_sigterm_during_before_hook_runs_after_hook(tmp_path, make_job, app_tree):
    dest = tmp_path / "backups"
    marker = tmp_path / "after-ran"
    job = make_job(files_job_body(app_tree, dest)
                   + f'[hooks]\nbefore = [["sleep", "30"]]\nafter = [["touch", "{marker}"]]\n')
    proc = subprocess.Popen([VIGIL, "--config", str(job), "run"], stderr=subprocess.PIPE, text=True)
    wait_for_step(job, "hook:before")
    time.sleep(0.2)
    proc.terminate()
    assert proc.wait(timeout=60) == 1
    assert marker.exists()
    [run] = vigil_json("runs", config=job)
    assert run["outcome"] == "interrupted" and run["step"] == "hook:before"


def test_signal_after_commit_keeps_the_backup_and_says_so(tmp_path, make_job, app_tree):
    dest = tmp_path / "backups"
    notified = tmp_path / "notified"
    job = make_job(files_job_body(app_tree, dest)
                   + '[hooks]\nbefore = [["true"]]\nafter = [["sleep", "30"]]\n'
                   + f'[[notify]]\ntype = "command"\nargv = ["sh", "-c", "env > {notified}"]\n')
    proc = subprocess.Popen([VIGIL, "--config", str(job), "run"], stderr=subprocess.PIPE, text=True)
    running = wait_for_step(job, "hook:after")
    time.sleep(0.2)
    proc.send_signal(signal.SIGHUP)
    assert proc.wait(timeout=60) == 1
    [backup] = committed(dest)  # the committed backup stays listed
    assert backup.name == running["run_id"]
    [row] = vigil_json("list", config=job)
    assert row["id"] == running["run_id"]
    [run] = vigil_json("runs", config=job)
    assert (run["outcome"], run["step"]) == ("interrupted", "hook:after")
    env = dict(line.split("=", 1) for line in notified.read_text().splitlines() if line.startswith("VIGIL_"))
    assert env["VIGIL_EVENT"] == "failure" and env["VIGIL_STEP"] == "hook:after"
    assert "SIGHUP" in env["VIGIL_ERROR"] and f"backup {running['run_id']} was committed" in env["VIGIL_ERROR"]


def test_kill_9_is_seen_as_died_by_the_next_run(tmp_path, make_job, slow_tree):
    dest = tmp_path / "backups"
    job = make_job(files_job_body(slow_tree, dest))
    proc = subprocess.Popen([VIGIL, "--config", str(job), "run"], stderr=subprocess.DEVNULL)
    killed = wait_for_step(job, "source:")
    proc.kill()
    proc.wait()
    (slow_tree / "huge.sparse").unlink()  # the next run need not take long
    assert not committed(dest)
    assert vigil_json("list", config=job) == []
    vigil("run", config=job, check=0)
    runs = {r["run_id"]: r for r in vigil_json("runs", config=job)}
    assert runs[killed["run_id"]]["outcome"] == "died"
    assert killed["run_id"] in runs[killed["run_id"]]["error"]
    assert len(committed(dest)) == 1


def test_list_json_shape_and_order(tmp_path, make_job, app_tree):
    dest = tmp_path / "backups"
    job = make_job(files_job_body(app_tree, dest))
    vigil("run", config=job, check=0)
    vigil("run", config=job, check=0)
    rows = vigil_json("list", config=job)
    assert len(rows) == 2
    assert rows[0]["started_at"] >= rows[1]["started_at"]
    for r in rows:
        assert {"id", "job", "destination", "started_at", "finished_at", "size", "artifacts", "warnings"} <= set(r)
        assert r["destination"] == "local" and r["job"] == "app"
        assert "files-app.tar.zst" in r["artifacts"] and r["size"] > 0
        assert r["started_at"].endswith("Z")
    assert vigil("list", config=job, check=0).stdout.count("complete") == 2


def test_a_reader_that_goes_away_is_not_an_error(tmp_path, make_job, app_tree):
    # `vigil list | head -1`: the reader exits first; vigil finishes quietly with its own code.
    job = make_job(files_job_body(app_tree, tmp_path / "backups"))

    def reader_gone(*args: str) -> subprocess.CompletedProcess:
        read, write = os.pipe()
        os.close(read)  # gone before vigil writes a byte
        try:
            return subprocess.run([VIGIL, "--config", str(job), *args], stdout=write, stderr=subprocess.PIPE,
                                  text=True, timeout=60)
        finally:
            os.close(write)

    vigil("run", config=job, check=0)
    for args in (["list"], ["list", "--json"], ["runs", "--json"], ["verify"]):
        proc = reader_gone(*args)
        assert proc.returncode == 0, (args, proc.stderr)
        assert proc.stderr == "", (args, proc.stderr)
    # ... and a failure stays a failure: a damaged backup is exit 1 whoever reads the output.
    flip_byte(next((tmp_path / "backups" / "app").glob("*/files-app.tar.zst")), at=100)
    proc = reader_gone("verify")
    assert proc.returncode == 1, proc.stderr


def test_backups_and_state_are_private(tmp_path, make_job, app_tree):
    dest = tmp_path / "backups"
    job = make_job(files_job_body(app_tree, dest))
    vigil("run", config=job, check=0)
    [backup] = committed(dest)
    assert stat.S_IMODE(backup.stat().st_mode) == 0o700
    for f in backup.iterdir():
        assert stat.S_IMODE(f.stat().st_mode) == 0o600, f
    assert stat.S_IMODE((tmp_path / "state/journal.db").stat().st_mode) == 0o600


def test_several_jobs_worst_outcome_wins(tmp_path, make_job, app_tree):
    dest = tmp_path / "backups"
    good = make_job(files_job_body(app_tree, dest), name="good")
    make_job(files_job_body(tmp_path / "missing", dest), name="bad")
    proc = vigil("run", config=tmp_path, check=1)
    assert "bad" in proc.stderr
    assert len(committed(dest, "good")) == 1
    vigil("run", "good", config=tmp_path, check=0)
    assert good.exists()


def test_read_only_state_dir_is_one_line_exit_1(tmp_path, make_job, app_tree):
    if os.geteuid() == 0:
        # root ignores directory permissions: use a read-only bind of a tmpfs instead
        ro = tmp_path / "ro"
        ro.mkdir()
        if subprocess.run(["mount", "-t", "tmpfs", "-o", "ro,size=1m", "tmpfs", str(ro)]).returncode != 0:
            pytest.skip("cannot mount a read-only tmpfs here")
    else:
        ro = tmp_path / "ro"
        ro.mkdir(mode=0o500)
    try:
        job = make_job(files_job_body(app_tree, tmp_path / "backups"), state_dir=ro / "state")
        proc = vigil("run", config=job)
        assert proc.returncode == 1
        lines = [line for line in proc.stderr.splitlines() if line.strip()]
        assert "Traceback" not in proc.stderr
        assert any(str(ro) in line for line in lines)
    finally:
        if os.geteuid() == 0:
            subprocess.run(["umount", str(ro)])


def test_bad_encryption_key_is_refused_not_ignored(tmp_path, make_job, app_tree):
    dest = tmp_path / "backups"
    # Not shaped like a key at all: refused when the job is loaded, before any run.
    bad = make_job(files_job_body(app_tree, dest) + '[encryption]\nrecipients = ["age1qqqq"]\n', name="bad")
    proc = vigil("run", config=bad, check=2)
    assert "encryption.recipients[0]: not an age public key" in proc.stderr and "Traceback" not in proc.stderr
    assert not committed(dest, job="bad")
    # Shaped like a key but with a wrong checksum: the run fails in preflight, before any source is read.
    good = "age1y34hs0swla8w45gvl89qks5dn4fealzrfrlmhujpwl6thnm6a58sl9eaye"
    bad = make_job(files_job_body(app_tree, dest) + f'[encryption]\nrecipients = ["{good[:-1]}q"]\n', name="bad")
    proc = vigil("run", config=bad, check=1)
    assert "encryption.recipients[0]: not an age public key" in proc.stderr and "Traceback" not in proc.stderr
    assert not committed(dest, job="bad")
    [run] = vigil_json("runs", config=bad)
    assert run["step"] == "preflight"



@pytest.mark.parametrize("engine", ["postgres", "mysql"])
def test_unreadable_database_password_stops_the_run_in_preflight(tmp_path, make_job, engine):
    """The secret is read before any hook or dump starts; the failure is an ordinary one (no
    'unexpected error', no traceback even with -v) and names the job file and the key."""
    dest, marker = tmp_path / "backups", tmp_path / "before-hook-ran"
    job = make_job(f"""
        [hooks]
        before = [["touch", "{marker}"]]
        [[source]]
        type = "{engine}"
        name = "db"
        host = "127.0.0.1"
        port = 9
        user = "backup"
        password_env = "VIGIL_TEST_UNSET_PASSWORD"
        database = "shop"
        [[destination]]
        type = "local"
        path = "{dest}"
    """, name="nopw")
    env = {k: v for k, v in os.environ.items() if k != "VIGIL_TEST_UNSET_PASSWORD"}
    proc = subprocess.run([VIGIL, "-v", "--config", str(job), "run"], capture_output=True, text=True, env=env,
                          timeout=60)
    assert proc.returncode == 1, proc.stderr
    assert f"{job}: {engine} source db: password_env: environment variable VIGIL_TEST_UNSET_PASSWORD is not set" \
        in proc.stderr
    assert "Traceback" not in proc.stderr and "unexpected error" not in proc.stderr
    [run] = vigil_json("runs", config=job)
    assert (run["outcome"], run["step"]) == ("failed", "preflight")
    assert not marker.exists() and not committed(dest, job="nopw")

@pytest.fixture
def small_disk(tmp_path):
    """A real 30 MiB file system: writes beyond it fail with ENOSPC."""
    disk = tmp_path / "disk"
    disk.mkdir()
    if os.geteuid() != 0 or subprocess.run(["mount", "-t", "tmpfs", "-o", "size=30m", "tmpfs", str(disk)]).returncode:
        pytest.skip("mounting a tmpfs needs root")
    try:
        yield disk
    finally:
        subprocess.run(["umount", str(disk)], check=True)


def test_full_disk_fails_cleanly_and_keeps_the_last_backup(tmp_path, make_job, app_tree, small_disk):
    dest = small_disk / "backups"
    job = make_job(files_job_body(app_tree, dest))
    (app_tree / "upload.bin").write_bytes(os.urandom(10 << 20))  # incompressible
    vigil("run", config=job, check=0)
    [first] = committed(dest)

    # The source grows past what the disk can hold: the write hits ENOSPC.
    (app_tree / "upload2.bin").write_bytes(os.urandom(22 << 20))
    proc = vigil("run", config=job, check=1)
    assert "Traceback" not in proc.stderr
    assert "No space left on device" in proc.stderr.splitlines()[-1] and str(dest) in proc.stderr.splitlines()[-1]
    assert committed(dest) == [first] and sorted(p.name for p in (dest / "app").iterdir() if p.name != "status.json") == [first.name]
    runs = vigil_json("runs", config=job)
    assert (runs[0]["outcome"], runs[0]["step"]) == ("failed", "destination:local")
    assert "No space left on device" in runs[0]["error"]
    vigil("verify", "app", "latest", "--deep", config=job, check=0)  # the earlier backup is untouched

    # Less room than the last backup needs (its size + 20%): refused before writing.
    (small_disk / "filler").write_bytes(bytes(10 << 20))
    proc = vigil("run", config=job, check=1)
    assert "Traceback" not in proc.stderr
    assert "not enough free space" in proc.stderr.splitlines()[-1]
    assert sorted(p.name for p in (dest / "app").iterdir() if p.name != "status.json") == [first.name]


def _on_a_terminal(*args: str, config: Path) -> tuple[int, str]:
    """Run vigil with stderr on a pseudo-terminal; its exit code and what the terminal showed."""
    import pty

    main, tty = pty.openpty()
    proc = subprocess.Popen([VIGIL, "--config", str(config), *args], stdout=subprocess.DEVNULL, stderr=tty)
    os.close(tty)
    shown = bytearray()
    while True:
        try:
            chunk = os.read(main, 65536)
        except OSError:  # EIO: the terminal's last writer is gone
            break
        if not chunk:
            break
        shown += chunk
    os.close(main)
    return proc.wait(timeout=120), shown.decode(errors="replace")


def test_progress_bars_only_on_a_terminal(tmp_path, make_job, app_tree):
    # Big enough that the bars are drawn at least once (they poll 5 times a second).
    (app_tree / "upload.bin").write_bytes(os.urandom(8 << 20) * 24)
    dest = tmp_path / "backups"
    job = make_job(files_job_body(app_tree, dest))
    code, shown = _on_a_terminal("run", config=job)
    assert code == 0
    assert "app → files-app.tar.zst" in shown and "MB" in shown
    assert "backup" in shown and "complete" in shown  # log lines still reach the terminal

    plain = vigil("run", config=job, check=0)  # stderr is a pipe: log lines only
    assert "\x1b[" not in plain.stderr and "→" not in plain.stderr

    code, shown = _on_a_terminal("restore", "app", "latest", "--source", "app", "--to", str(tmp_path / "r"),
                                 config=job)
    assert code == 0 and "files-app.tar.zst" in shown and "/ " in shown  # a bar with its total
    assert (tmp_path / "r/upload.bin").stat().st_size == 192 << 20


def test_root_renamed_away_during_the_run_fails_it_and_prunes_nothing(tmp_path, make_job, app_tree):
    dest = tmp_path / "backups"
    job = make_job(files_job_body(app_tree, dest) + "[retention]\nkeep_last = 1\n")
    vigil("run", config=job, check=0)
    [good] = committed(dest)
    # Read first (sorted names) and slow (~5 s of hashing zeros): the rename lands while it is read.
    with open(app_tree / "0-huge.sparse", "wb") as fh:
        fh.truncate(8 << 30)
    proc = subprocess.Popen([VIGIL, "--config", str(job), "run"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    try:
        wait_for_step(job, "source:app")
        # The step is journaled just before the root is opened: wait until the big file is being read.
        deadline = time.time() + 60
        while not any(path.endswith("0-huge.sparse") for path in open_files(proc.pid)):
            assert time.time() < deadline and proc.poll() is None, "the run never opened 0-huge.sparse"
            time.sleep(0.01)
        app_tree.rename(tmp_path / "www-moved")
        _, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 1, err
    assert f"path {app_tree} vanished" in err and "Traceback" not in err
    runs = vigil_json("runs", config=job)
    assert (runs[0]["outcome"], runs[0]["step"]) == ("failed", "source:app")
    assert committed(dest) == [good]  # keep_last = 1 pruned nothing: the good backup is still there


def test_sources_are_opened_only_after_the_before_hooks(tmp_path, make_job):
    """A before hook may mount or dump what a source reads: preflight must not look first."""
    src, db, dest = tmp_path / "mounted", tmp_path / "dump.sqlite", tmp_path / "backups"
    make = f"mkdir -p {src} && echo hello > {src}/f.txt && sqlite3 {db} 'CREATE TABLE t (x); INSERT INTO t VALUES (1)'"
    job = make_job(files_and_sqlite(src, db) + f'[[destination]]\ntype = "local"\npath = "{dest}"\n'
                   + f'[hooks]\nbefore = [["sh", "-c", "{make}"]]\n')
    vigil("run", config=job, check=0)
    [backup] = committed(dest)
    extract_with_tar(backup / "files-app.tar.zst", tmp_path / "out")
    assert (tmp_path / "out/f.txt").read_text() == "hello\n"
    assert (backup / "db-db.sqlite.zst").exists()


def test_on_failure_hooks_run_whatever_the_step(tmp_path, make_job, app_tree):
    marker = tmp_path / "on-failure"
    hooks = f'[hooks]\non_failure = [["sh", "-c", "echo $VIGIL_STEP >> {marker}"]]\n'
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("a file where the destination's parent should be")
    # Fails in preflight, before any before hook.
    job = make_job(files_job_body(app_tree, blocker / "backups") + hooks, name="early")
    vigil("run", config=job, check=1)
    assert marker.read_text() == "destination:local\n"
    # Fails in the after hook of an otherwise good run.
    marker.unlink()
    job = make_job(files_job_body(app_tree, tmp_path / "backups") + hooks + 'before = [["true"]]\nafter = [["false"]]\n', name="late")
    vigil("run", config=job, check=1)
    assert marker.read_text() == "hook:after\n"


def test_hooks_run_in_the_job_directory_or_hooks_cwd(tmp_path, make_job, app_tree):
    site = tmp_path / "site"
    site.mkdir()
    job = make_job(files_job_body(app_tree, tmp_path / "backups")
                   + '[hooks]\nbefore = [["sh", "-c", "pwd > where.txt"]]\n')
    # As from cron: the working directory is somewhere else entirely.
    subprocess.run([VIGIL, "--config", str(job), "run"], cwd="/", check=True, capture_output=True)
    assert (tmp_path / "where.txt").read_text().strip() == str(tmp_path)
    job.write_text(job.read_text().replace("[hooks]\n", '[hooks]\ncwd = "site"\n'))
    subprocess.run([VIGIL, "--config", str(job), "run"], cwd="/", check=True, capture_output=True)
    assert (site / "where.txt").read_text().strip() == str(site)


def test_hooks_and_command_channels_do_not_see_the_secrets(tmp_path, make_job, app_tree, smtp_server):
    hook_env, channel_env = tmp_path / "hook.env", tmp_path / "channel.env"
    job = make_job(files_job_body(app_tree, tmp_path / "backups") + email_notify(smtp_server) + textwrap.dedent(f"""
        [[notify]]
        type = "command"
        on = ["success"]
        argv = ["sh", "-c", "env > {channel_env}"]
        [hooks]
        before = [["sh", "-c", "env > {hook_env}"]]
    """))
    vigil("run", config=job, check=0)
    for dump in (hook_env, channel_env):
        names = {line.split("=", 1)[0] for line in dump.read_text().splitlines() if "=" in line}
        assert "VIGIL_JOB" in names and "PATH" in names
        assert "VIGIL_TEST_SMTP_PASSWORD" not in names  # the mail channel's password_env


@pytest.mark.parametrize("how", ["deleted", "replaced"])
def test_a_lock_file_deleted_or_replaced_mid_run_does_not_let_a_second_run_in(tmp_path, make_job, app_tree, how):
    dest = tmp_path / "backups"
    job = make_job(files_job_body(app_tree, dest) + '[hooks]\nbefore = [["sleep", "4"]]\n')
    first = subprocess.Popen([VIGIL, "--config", str(job), "run"], stderr=subprocess.PIPE, text=True)
    try:
        winner = wait_for_step(job, "hook:before")
        lock = tmp_path / "state/locks/app.lock"
        if how == "deleted":
            lock.unlink()
        else:
            fresh = lock.with_suffix(".new")
            fresh.write_text("")
            fresh.rename(lock)
        second = vigil("run", config=job)
        assert second.returncode == 75, second.stderr
        assert winner["run_id"] in second.stderr and str(winner["pid"]) in second.stderr
        assert first.wait(timeout=60) == 0, first.stderr.read()
    finally:
        if first.poll() is None:
            first.kill()
            first.wait()
    outcomes = sorted(r["outcome"] for r in vigil_json("runs", config=job))
    assert outcomes == ["skipped", "success"]  # the first is not journaled as died
    assert len(committed(dest)) == 1


def test_a_symlink_at_the_lock_path_is_not_followed(tmp_path, make_job, app_tree):
    target = tmp_path / "precious"
    target.write_text("keep me\n")
    job = make_job(files_job_body(app_tree, tmp_path / "backups"))
    (tmp_path / "state/locks").mkdir(parents=True)
    (tmp_path / "state/locks/app.lock").symlink_to(target)
    proc = vigil("run", config=job, check=1)
    assert "cannot take lock" in proc.stderr
    assert target.read_text() == "keep me\n"  # neither truncated nor overwritten with the holder
