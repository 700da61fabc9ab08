"""Shared fixtures: the installed `vigil` command, job files, small trees."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))

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


@pytest.fixture
def make_job(tmp_path: Path):
    """Write a job file; returns its path. Body is TOML appended to name/state_dir."""

    def make(body: str, name: str = "app", state_dir: Path | None = None) -> Path:
        path = tmp_path / f"{name}.toml"
        path.write_text(f'name = "{name}"\nstate_dir = "{state_dir or tmp_path / "state"}"\n'
                        + textwrap.dedent(body))
        return path

    return make


@pytest.fixture
def app_tree(tmp_path: Path) -> Path:
    """A small web-app tree with the awkward parts."""
    from gen_dataset import generate

    root = tmp_path / "www"
    generate(root, "small")
    return root


def files_job_body(src: Path, dest: Path, extra: str = "") -> str:
    return textwrap.dedent(f"""
        [[source]]
        type = "files"
        name = "app"
        path = "{src}"
        {extra}
        [[destination]]
        type = "local"
        path = "{dest}"
    """)


def committed(dest: Path, job: str = "app") -> list[Path]:
    d = dest / job
    return sorted(p for p in d.iterdir() if (p / "manifest.json").exists()) if d.exists() else []


@pytest.fixture(scope="session")
def tls_cert(tmp_path_factory):
    """A throw-away CA and a certificate for 127.0.0.1."""
    import trustme

    d = tmp_path_factory.mktemp("tls")
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1", "localhost")
    ca.cert_pem.write_to_path(d / "ca.pem")
    cert.private_key_pem.write_to_path(d / "key.pem")
    cert.cert_chain_pems[0].write_to_path(d / "cert.pem")
    return d


@pytest.fixture
def smtp_server(tls_cert):
    from servers import SmtpServer, free_port

    server = SmtpServer(port=free_port(), ca_file=tls_cert / "ca.pem")
    server.start(tls_cert / "cert.pem", tls_cert / "key.pem")
    yield server
    server.stop()


@pytest.fixture
def http_recorder():
    from servers import HttpRecorder

    rec = HttpRecorder()
    rec.start()
    yield rec
    rec.stop()


def email_notify(smtp, on: str = '["failure", "unhealthy", "recovered"]') -> str:
    from servers import SMTP_USER

    return textwrap.dedent(f"""
        [[notify]]
        type = "email"
        on = {on}
        smtp_host = "127.0.0.1"
        smtp_port = {smtp.port}
        starttls = true
        tls_ca_file = "{smtp.ca_file}"
        username = "{SMTP_USER}"
        password_env = "VIGIL_TEST_SMTP_PASSWORD"
        from = "vigil@example.test"
        to = ["ops@example.test", "oncall@example.test"]
        timeout = "10s"
    """)


@pytest.fixture(autouse=True)
def _smtp_password_env(monkeypatch):
    from servers import SMTP_PASSWORD

    monkeypatch.setenv("VIGIL_TEST_SMTP_PASSWORD", SMTP_PASSWORD)
