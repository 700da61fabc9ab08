"""Helpers shared by the test modules: run the installed vigil, job snippets."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import stat
import subprocess
import sys
import time
import tomllib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from jobfile import files_source, local_destination, sqlite_source, toml

VIGIL = shutil.which("vigil", path=str(Path(sys.executable).parent)) or shutil.which("vigil")


def vigil(*args: str, config: Path | None = None, check: int | None = None, env: dict | None = None,
          timeout: float = 120) -> subprocess.CompletedProcess:
    """Run the installed vigil command as a user would."""
    cmd = [VIGIL] + (["--config", str(config)] if config else []) + list(args)
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, **(env or {})})
    if check is not None:
        assert proc.returncode == check, f"{cmd} -> {proc.returncode}\nstdout:{proc.stdout}\nstderr:{proc.stderr}"
    return proc


def vigil_json(*args: str, config: Path) -> list | dict:
    return json.loads(vigil(*args, "--json", config=config, check=0).stdout)


def files_job_body(src: Path, dest: Path, extra: str = "") -> str:
    """A files source named app and a local destination; `extra` is TOML keys of the source.
    The destination's table comes last: a test may append keys to it."""
    source = files_source(src, **tomllib.loads(extra))
    return "\n" + toml({"source": [source], "destination": [local_destination(dest)]})


def systemd_analyze() -> str:
    """The systemd-analyze command. scripts/install-system-deps.sh installs systemd:
    its absence is a broken setup, not a pass."""
    path = shutil.which("systemd-analyze")
    assert path, "systemd-analyze is missing: run scripts/install-system-deps.sh"
    return path


def committed(dest: Path, job: str = "app") -> list[Path]:
    d = dest / job
    return sorted(p for p in d.iterdir() if (p / "manifest.json").exists()) if d.exists() else []


def flip_byte(path: Path, at: int | None = None) -> None:
    """Damage a stored file: invert one byte (the middle one unless `at` says)."""
    with open(path, "r+b") as fh:
        offset = path.stat().st_size // 2 if at is None else at
        fh.seek(offset)
        byte = fh.read(1)
        fh.seek(offset)
        fh.write(bytes([byte[0] ^ 0xFF]))


def email_notify(smtp, on: str = '["failure", "unhealthy", "recovered"]', tls: str = "starttls = true") -> str:
    """An email channel to the test SMTP server; `on` is a TOML list, `tls` TOML keys."""
    from servers import SMTP_USER

    channel = {"type": "email", "on": tomllib.loads(f"on = {on}")["on"], "smtp_host": "127.0.0.1",
               "smtp_port": smtp.port, **tomllib.loads(tls), "tls_ca_file": smtp.ca_file, "username": SMTP_USER,
               "password_env": "VIGIL_TEST_SMTP_PASSWORD", "from": "vigil@example.test",
               "to": ["ops@example.test", "oncall@example.test"], "timeout": "10s"}
    return "\n" + toml({"notify": [channel]})




def wait_for_step(job: Path, prefix: str, timeout: float = 30) -> dict:
    """Poll the journal until the running attempt of the job reaches a step."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        proc = vigil("runs", "--json", config=job)
        if proc.returncode == 0:
            rows = [r for r in json.loads(proc.stdout) if r["outcome"] == "running"]
            if rows and (rows[0]["step"] or "").startswith(prefix):
                return rows[0]
        time.sleep(0.05)
    raise AssertionError(f"run never reached step {prefix}")


_APPENDER = """
import os, sys
fd = os.open(sys.argv[1], os.O_WRONLY | os.O_APPEND)
while True:
    os.write(fd, b"more\\n")
"""


@contextmanager
def appending(path: Path) -> Iterator[None]:
    """Another process appends to `path` without pause for the duration of the block.

    A process of its own: a thread of the test process can be starved for the
    few milliseconds a read takes, and then a read sees no change. The block
    starts only once the file has grown."""
    size = path.stat().st_size
    proc = subprocess.Popen([sys.executable, "-c", _APPENDER, str(path)])
    try:
        while path.stat().st_size == size:
            time.sleep(0.01)
        yield
    finally:
        proc.kill()
        proc.wait()


def open_files(pid: int) -> list[str]:
    """What a process has open, by path (descriptors closed meanwhile skipped)."""
    out = []
    for fd in Path(f"/proc/{pid}/fd").glob("*"):
        try:
            out.append(os.readlink(fd))
        except OSError:
            continue
    return out


def remove_deep_tree(top: Path) -> None:
    """Remove a tree of any depth without recursion. pytest's own clean-up of old
    temporary directories (shutil.rmtree) recurses per level and would fail on it."""
    dirs, stack = [], [str(top)]
    while stack:
        d = stack.pop()
        dirs.append(d)
        with os.scandir(d) as it:
            for entry in it:
                if entry.is_dir(follow_symlinks=False):
                    stack.append(entry.path)
                else:
                    os.unlink(entry.path)
    for d in reversed(dirs):
        os.rmdir(d)


def tree_listing(root: Path) -> dict[str, tuple]:
    """Everything a restore must reproduce: type, bytes, mode, mtime, link target."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            p = Path(dirpath) / name
            rel = str(p.relative_to(root))
            st = p.lstat()
            if stat.S_ISLNK(st.st_mode):
                out[rel] = ("link", os.readlink(p))
            elif stat.S_ISDIR(st.st_mode):
                out[rel] = ("dir", stat.S_IMODE(st.st_mode))
            else:
                out[rel] = ("file", hashlib.sha256(p.read_bytes()).hexdigest(), stat.S_IMODE(st.st_mode),
                            int(st.st_mtime))
    return out


def tree_without_db(root: Path) -> dict[str, tuple]:
    """`tree_listing` of an app tree whose sqlite database is the job's own source
    (`files_and_sqlite`): a files source leaves that file out, it is stored once."""
    listing = tree_listing(root)
    del listing["database/database.sqlite"]
    return listing


def age_keygen(path: Path) -> str:
    """A new age identity in `path` (Debian's age-keygen); returns its public key."""
    subprocess.run(["age-keygen", "-o", str(path)], check=True, capture_output=True)
    return next(line.split(": ")[1] for line in path.read_text().splitlines() if "public key" in line)


def files_and_sqlite(src, db) -> str:
    """Two sources: the files of `src` (app) and the SQLite database `db` (db)."""
    return "\n" + toml({"source": [files_source(src), sqlite_source(db)]})


def age_decrypt_with_passphrase(src: Path, out: Path, passphrase: str) -> None:
    """Debian's `age -d` on `src`, typing the passphrase at its terminal prompt.

    age reads passphrases only from a terminal, so it runs on a pty."""
    import pty

    pid, fd = pty.fork()
    if pid == 0:  # the child: age, with the pty as its controlling terminal
        os.execvp("age", ["age", "-d", "-o", str(out), str(src)])
    seen = b""
    try:
        while b"passphrase" not in seen.lower():
            seen += os.read(fd, 1024)
        os.write(fd, passphrase.encode() + b"\n")
        while chunk := os.read(fd, 1024):
            seen += chunk
    except OSError:
        pass  # EIO: the child closed the terminal
    finally:
        os.close(fd)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0, seen.decode(errors="replace")


# --- cron's and systemd's rules, read back independently of vigil's own code ---


def cron_sh(line: str) -> str:
    """What cron hands to `sh -c` (crontab(5)): an unescaped % ends the command, \\% is a %."""
    out, i = "", 0
    while i < len(line):
        if line[i] == "\\" and i + 1 < len(line):
            out += "%" if line[i + 1] == "%" else line[i:i + 2]
            i += 2
            continue
        if line[i] == "%":
            break
        out += line[i]
        i += 1
    return out


def systemd_reading(value: str) -> list[str]:
    """systemd.service(5), "Command lines": split on whitespace, quotes group, C escapes,
    then %% is % (specifiers) and $$ is $ (variables)."""
    escapes = {"n": "\n", "t": "\t", "\\": "\\", '"': '"', "'": "'", "s": " "}
    out, cur, quote, started, i = [], "", None, False, 0
    while i < len(value):
        c = value[i]
        if c == "\\":
            nxt = value[i + 1]
            if nxt == "x":
                cur += chr(int(value[i + 2:i + 4], 16))
                i += 4
                continue
            cur += escapes[nxt]
            i, started = i + 2, True
            continue
        if quote and c == quote:
            quote = None
        elif not quote and c in "\"'":
            quote, started = c, True
        elif not quote and c == " ":
            if started:
                out.append(cur)
            cur, started = "", False
        else:
            cur, started = cur + c, True
        i += 1
    if started:
        out.append(cur)
    return [w.replace("%%", "%").replace("$$", "$") for w in out]
