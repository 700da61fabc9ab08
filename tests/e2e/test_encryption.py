"""age encryption at rest: what leaves the host is unreadable without the key."""

from __future__ import annotations

import json
import subprocess
import textwrap
from pathlib import Path

from helpers import (
    age_decrypt_with_passphrase,
    age_keygen,
    committed,
    files_and_sqlite,
    tree_listing,
    tree_without_db,
    vigil,
    vigil_json,
)


def job_body(src: Path, tmp_path: Path, recipient: str | None, identity: Path | None = None,
             passphrase_env: str | None = None) -> str:
    keys = f'recipients = ["{recipient}"]\n' if recipient else f'passphrase_env = "{passphrase_env}"\n'
    ident = f'identity_file = "{identity}"\n' if identity else ""
    return files_and_sqlite(src, src / "database/database.sqlite") + textwrap.dedent(f"""
        [[destination]]
        type = "local"
        name = "vault"
        path = "{tmp_path / 'vault'}"
        [[destination]]
        type = "local"
        name = "plain"
        path = "{tmp_path / 'plain'}"
        encrypt = false
        [encryption]
    """) + keys + ident


def test_encrypted_round_trip_and_age_cli(tmp_path, make_job, app_tree):
    key = tmp_path / "key.txt"
    job = make_job(job_body(app_tree, tmp_path, age_keygen(key), key))
    vigil("run", config=job, check=0)
    [vault] = committed(tmp_path / "vault")
    [plain] = committed(tmp_path / "plain")
    assert sorted(p.name for p in vault.iterdir()) == ["db-db.sqlite.zst.age", "files-app.tar.zst.age",
                                                       "index-app.jsonl.zst.age", "manifest.json"]
    assert "files-app.tar.zst" in {p.name for p in plain.iterdir()}
    manifest = json.loads((vault / "manifest.json").read_text())
    assert all(a["encrypted"] and a["name"].endswith(".age") for a in manifest["artifacts"])

    # Not readable without the key: no zstd frame, no file names, no contents.
    raw = (vault / "files-app.tar.zst.age").read_bytes()
    assert raw.startswith(b"age-encryption.org/v1") and b"\x28\xb5\x2f\xfd" not in raw[:200]
    assert b"config/" not in raw and b"hardlink" not in raw

    # The standard age CLI decrypts it: age -d -i key | zstd -d | tar -x
    out = tmp_path / "by-hand"
    out.mkdir()
    subprocess.run(f"age -d -i '{key}' '{vault / 'files-app.tar.zst.age'}' | zstd -d | tar -x -C '{out}'",
                   shell=True, check=True)
    assert tree_listing(out) == tree_without_db(app_tree)

    vigil("verify", "app", "latest", "--deep", "--restore-test", config=job, check=0)
    target = tmp_path / "restored"
    done = vigil("restore", "app", "latest", "--source", "app", "--to", str(target), config=job, check=0)
    assert "from vault" in done.stdout
    assert tree_listing(target) == tree_without_db(app_tree)


def test_backup_needs_only_the_public_key_and_wrong_key_is_clear(tmp_path, make_job, app_tree):
    key = tmp_path / "key.txt"
    recipient = age_keygen(key)
    job = make_job(job_body(app_tree, tmp_path, recipient, None))  # no identity on the server
    vigil("run", config=job, check=0)
    vigil("verify", config=job, check=0)  # checksums need no key
    deep = vigil("verify", "app", "latest", "--deep", config=job)
    assert deep.returncode != 0 and "identity_file" in deep.stdout + deep.stderr

    other = tmp_path / "other.txt"
    age_keygen(other)
    wrong = make_job(job_body(app_tree, tmp_path, recipient, other))
    proc = vigil("restore", "app", "latest", "--source", "app", "--to", str(tmp_path / "t"), config=wrong, check=1)
    assert "wrong key" in proc.stderr and "Traceback" not in proc.stderr
    assert sorted(r["destination"] for r in vigil_json("list", config=job)) == ["plain", "vault"]


def test_passphrase_round_trip_and_age_cli(tmp_path, make_job, app_tree):
    phrase = "tr0ub4dor & 3 ünïcode words"
    env = {"VIGIL_TEST_PASSPHRASE": phrase}
    job = make_job(job_body(app_tree, tmp_path, None, passphrase_env="VIGIL_TEST_PASSPHRASE"))
    vigil("run", config=job, check=0, env=env)
    [vault] = committed(tmp_path / "vault")
    raw = (vault / "files-app.tar.zst.age").read_bytes()
    assert raw.startswith(b"age-encryption.org/v1\n-> scrypt ") and b"config/" not in raw

    # Debian's age CLI decrypts it with the passphrase typed at its prompt.
    plain = tmp_path / "files-app.tar.zst"
    age_decrypt_with_passphrase(vault / "files-app.tar.zst.age", plain, phrase)
    out = tmp_path / "by-hand"
    out.mkdir()
    subprocess.run(f"zstd -d < '{plain}' | tar -x -C '{out}'", shell=True, check=True)
    assert tree_listing(out) == tree_without_db(app_tree)

    vigil("verify", "app", "latest", "--deep", "--restore-test", config=job, check=0, env=env)
    target = tmp_path / "restored"
    vigil("restore", "app", "latest", "--source", "app", "--to", str(target), config=job, check=0, env=env)
    assert tree_listing(target) == tree_without_db(app_tree)

    # A wrong passphrase is named as such; a missing one names the key to set.
    wrong = vigil("restore", "app", "latest", "--source", "app", "--to", str(tmp_path / "t"), config=job,
                  check=1, env={"VIGIL_TEST_PASSPHRASE": "guess"})
    assert "wrong passphrase" in wrong.stderr and "Traceback" not in wrong.stderr
    missing = vigil("verify", "app", "latest", "--deep", config=job)
    assert missing.returncode != 0 and "passphrase_env" in missing.stdout + missing.stderr


def test_passphrase_config_mistakes_fail_before_writing(tmp_path, make_job, app_tree):
    job = make_job(job_body(app_tree, tmp_path, None, passphrase_env="VIGIL_UNSET_PASSPHRASE"))
    proc = vigil("run", config=job, check=1)
    assert "encryption: passphrase_env: environment variable VIGIL_UNSET_PASSPHRASE is not set" in proc.stderr
    assert not committed(tmp_path / "vault") and not committed(tmp_path / "plain")
    [run] = vigil_json("runs", config=job)
    assert run["step"] == "preflight"

    key = tmp_path / "key.txt"
    both = make_job(job_body(app_tree, tmp_path, age_keygen(key)) + 'passphrase_env = "X"\n', name="both")
    proc = vigil("run", config=both, check=2)
    assert "encryption" in proc.stderr and "not both" in proc.stderr and "Traceback" not in proc.stderr
