"""Shared fixtures: the installed `vigil` command, job files, small trees."""

from __future__ import annotations

import os
import textwrap
from pathlib import Path

import pytest
from jobfile import JobFile


@pytest.fixture
def make_job(tmp_path: Path):
    """Write a job file; returns its path. Body is TOML appended to name/state_dir."""

    def make(body: str, name: str = "app", state_dir: Path | None = None) -> Path:
        path = tmp_path / f"{name}.toml"
        path.write_text(JobFile(name=name, state_dir=state_dir or tmp_path / "state").render()
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


@pytest.fixture(autouse=True)
def _smtp_password_env(monkeypatch):
    from servers import SMTP_PASSWORD

    monkeypatch.setenv("VIGIL_TEST_SMTP_PASSWORD", SMTP_PASSWORD)


@pytest.fixture
def big_tree(tmp_path: Path) -> Path:
    """Enough incompressible data that the source step lasts a while."""
    root = tmp_path / "big"
    root.mkdir()
    for i in range(48):
        (root / f"blob{i:02d}.bin").write_bytes(os.urandom(8 << 20))
    return root


@pytest.fixture
def slow_tree(app_tree: Path) -> Path:
    """app_tree plus a 32 GiB sparse file: a source step that lasts long enough to
    be interrupted at will, whatever the machine's speed (holes cost no disk;
    hashing their zeros takes ~20 s). Remove huge.sparse to let later runs be quick."""
    with open(app_tree / "huge.sparse", "wb") as fh:
        fh.truncate(32 << 30)
    return app_tree


@pytest.fixture(scope="session")
def s3_server():
    """moto in server mode on 127.0.0.1: the same HTTP code path as a real store."""
    from moto.server import ThreadedMotoServer
    from servers import free_port

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    yield f"http://127.0.0.1:{port}"
    server.stop()


@pytest.fixture
def s3_bucket(s3_server, monkeypatch):
    import secrets

    import boto3

    monkeypatch.setenv("VIGIL_TEST_S3_KEY", "testing")
    monkeypatch.setenv("VIGIL_TEST_S3_SECRET", "testing")
    s3 = boto3.client("s3", endpoint_url=s3_server, region_name="us-east-1", aws_access_key_id="testing",
                      aws_secret_access_key="testing")
    name = f"vigil-{secrets.token_hex(4)}"
    s3.create_bucket(Bucket=name)
    return s3, name


# Real database servers on 127.0.0.1, one of each per test session, for every suite
# that needs one (integration, contract).
@pytest.fixture(scope="session")
def postgres():
    import shutil

    from dbservers import start_postgres

    server = start_postgres()
    yield server
    server.stop()
    shutil.rmtree(server.dir, ignore_errors=True)


@pytest.fixture(scope="session")
def mariadb():
    import shutil

    from dbservers import start_mariadb

    server = start_mariadb()
    yield server
    server.stop()
    shutil.rmtree(server.dir, ignore_errors=True)
