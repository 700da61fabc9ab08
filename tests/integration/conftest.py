from __future__ import annotations

import shutil

import pytest

from dbservers import start_mariadb, start_postgres


@pytest.fixture(scope="session")
def postgres():
    server = start_postgres()
    yield server
    server.stop()
    shutil.rmtree(server.dir, ignore_errors=True)


@pytest.fixture(scope="session")
def mariadb():
    server = start_mariadb()
    yield server
    server.stop()
    shutil.rmtree(server.dir, ignore_errors=True)
