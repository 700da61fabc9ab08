"""The conformance suite every source passes (files, sqlite, postgres, mysql).

Backups are made by the installed `vigil run`; what is stored is then read back
through the source's own contract (sources/base.py): `restore_to` gives the
same data, `verify_deep` catches a stored artifact that does not check out,
a non-empty target is refused without force. A new source type is a new
module plus one entry in CASES.
"""

from __future__ import annotations

import hashlib
import json
import logging
import secrets
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import zstandard
from dbservers import MY_PASSWORD, PG_PASSWORD
from helpers import flip_byte, tree_listing, vigil

from vigil.config.load import load_config
from vigil.destinations.base import make_destination
from vigil.errors import ConfigError, Damaged, VigilError
from vigil.pipeline.reading import ArtifactReader
from vigil.sources.base import RestoreTarget, Source, SourceContext, source_for


@dataclass
class Case:
    """One source type under test: its job table, its data, and how to compare and target it."""

    source: str  # the [[source]] table, name "data"
    read: Callable[[], Any]  # the original data, comparable
    target: Callable[[], RestoreTarget]  # a fresh, empty target
    read_target: Callable[[RestoreTarget], Any]  # what a restore put into a target
    occupy: Callable[[RestoreTarget], Callable[[], Any]]  # make a target non-empty; what it holds then


def files_case(tmp_path: Path, server: Any) -> Case:
    root = tmp_path / "www"
    (root / "public" / "img").mkdir(parents=True)
    (root / "public" / "index.php").write_text("<?php echo 'hi';\n")
    (root / "public" / "img" / "logo.bin").write_bytes(secrets.token_bytes(70_000))
    (root / "storage").mkdir()
    (root / "storage" / "app.log").write_text("line\n" * 1000)
    (root / "current").symlink_to("public")
    (root / "public" / "index.php").chmod(0o640)

    def occupy(t: RestoreTarget) -> Callable[[], Any]:
        assert t.directory is not None
        t.directory.mkdir(parents=True, exist_ok=True)
        (t.directory / "keep.txt").write_text("mine")
        return lambda: tree_listing(t.directory)

    return Case(f'type = "files"\npath = "{root}"', lambda: tree_listing(root),
                lambda: RestoreTarget(directory=tmp_path / f"out-{secrets.token_hex(3)}"),
                lambda t: tree_listing(t.directory), occupy)


def sqlite_rows(path: Path) -> list[tuple]:
    conn = sqlite3.connect(path)
    try:
        return conn.execute("SELECT id, name, blob FROM customers ORDER BY id").fetchall()
    finally:
        conn.close()


def sqlite_case(tmp_path: Path, server: Any) -> Case:
    db = tmp_path / "app.sqlite"
    conn = sqlite3.connect(db)
    conn.execute("CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT, blob BLOB)")
    conn.executemany("INSERT INTO customers (name, blob) VALUES (?, ?)",
                     [(f"Zoë {i} 名前", secrets.token_bytes(100)) for i in range(500)])
    conn.commit()
    conn.close()

    def occupy(t: RestoreTarget) -> Callable[[], Any]:
        assert t.file is not None
        t.file.write_text("mine")
        return t.file.read_bytes

    return Case(f'type = "sqlite"\npath = "{db}"', lambda: sqlite_rows(db),
                lambda: RestoreTarget(file=tmp_path / f"out-{secrets.token_hex(3)}.sqlite"),
                lambda t: sqlite_rows(t.file), occupy)


PG_DATA = """
CREATE TABLE customers (id serial PRIMARY KEY, name text NOT NULL, avatar bytea);
INSERT INTO customers (name, avatar) SELECT 'Zoë ' || g, decode(md5(g::text), 'hex') FROM generate_series(1, 500) g;
CREATE TABLE ledger (id bigserial PRIMARY KEY, amount integer NOT NULL);
INSERT INTO ledger (amount) SELECT g * 7 FROM generate_series(1, 300) g;
"""


def pg_case(tmp_path: Path, server: Any) -> Case:
    db = f"shop_{secrets.token_hex(3)}"
    server.psql(f"CREATE DATABASE {db}")
    server.psql(PG_DATA, db)

    def read(name: str) -> dict[str, str]:
        return {t: server.psql(f"SELECT md5(string_agg(t::text, '|' ORDER BY t::text)) FROM {t} t", name)
                for t in ("customers", "ledger")}

    def occupy(t: RestoreTarget) -> Callable[[], Any]:
        server.psql(f"CREATE DATABASE {t.database}")
        server.psql("CREATE TABLE mine (id int); INSERT INTO mine VALUES (1)", t.database)
        return lambda: server.psql("SELECT string_agg(tablename, ' ' ORDER BY tablename) FROM pg_tables "
                                   "WHERE schemaname = 'public'", t.database)

    return Case(f'type = "postgres"\nhost = "127.0.0.1"\nport = {server.port}\nuser = "postgres"\n'
                f'password_env = "VIGIL_TEST_PGPASS"\ndatabase = "{db}"', lambda: read(db),
                lambda: RestoreTarget(database=f"restored_{secrets.token_hex(3)}"),
                lambda t: read(t.database), occupy)


def my_case(tmp_path: Path, server: Any) -> Case:
    db = f"shop_{secrets.token_hex(3)}"
    server.root_sql(f"CREATE DATABASE {db} CHARACTER SET utf8mb4")
    server.root_sql("CREATE TABLE customers (id INT AUTO_INCREMENT PRIMARY KEY, name TEXT, avatar BLOB);"
                    "INSERT INTO customers (name, avatar) SELECT CONCAT('Zoë ', seq), UNHEX(MD5(seq)) "
                    "FROM seq_1_to_500;", db)
    (tmp_path / "mypass").write_text(MY_PASSWORD + "\n")
    (tmp_path / "mypass").chmod(0o600)

    def read(name: str) -> str:
        return server.root_sql("SELECT MD5(GROUP_CONCAT(id, name, HEX(avatar) ORDER BY id SEPARATOR '|')) "
                               "FROM customers", name)

    def occupy(t: RestoreTarget) -> Callable[[], Any]:
        server.root_sql(f"CREATE DATABASE {t.database}; CREATE TABLE {t.database}.mine (id INT)")
        return lambda: server.root_sql("SHOW TABLES", t.database)

    return Case(f'type = "mysql"\nhost = "127.0.0.1"\nport = {server.port}\nuser = "{server.user}"\n'
                f'password_file = "{tmp_path / "mypass"}"\ndatabase = "{db}"', lambda: read(db),
                lambda: RestoreTarget(database=f"restored_{secrets.token_hex(3)}"),
                lambda t: read(t.database), occupy)


CASES = {"files": (files_case, None), "sqlite": (sqlite_case, None), "postgres": (pg_case, "postgres"),
         "mysql": (my_case, "mariadb")}


@pytest.fixture(params=list(CASES))
def case(request, tmp_path: Path, monkeypatch) -> Case:
    make, server = CASES[request.param]
    monkeypatch.setenv("VIGIL_TEST_PGPASS", PG_PASSWORD)
    return make(tmp_path, request.getfixturevalue(server) if server else None)


def write_job(tmp_path: Path, source: str) -> Path:
    path = tmp_path / "app.toml"
    path.write_text(f'name = "app"\nstate_dir = "{tmp_path / "state"}"\n[[source]]\nname = "data"\n{source}\n'
                    f'[[destination]]\ntype = "local"\npath = "{tmp_path / "backups"}"\n')
    return path


class Stored:
    """The one backup in the job's destination, read back through its source."""

    def __init__(self, config: Path) -> None:
        [self.job] = load_config(str(config))
        self.dest = make_destination(self.job.destination[0])
        [self.manifest] = self.dest.list("app")
        self.ctx = SourceContext(job=self.job, log=logging.getLogger("vigil"),
                                 tmp_dir=self.job.state_dir / "tmp")

    def readers(self) -> list[ArtifactReader]:
        return [ArtifactReader(self.dest, self.manifest, a) for a in self.manifest.artifacts]

    def source(self) -> Source:
        return source_for("data", self.main().art.type, self.ctx)

    def main(self) -> ArtifactReader:
        """The artifact a restore reads first: an archive or a dump, not an index."""
        return next(r for r in self.readers() if r.art.type != "index")

    def path(self, reader: ArtifactReader) -> Path:
        return self.dest.root / "app" / self.manifest.id / reader.art.name

    def rewrite(self, reader: ArtifactReader, plain: bytes) -> None:
        """Store other content under the artifact's name, with a manifest that matches it:
        only a check of what the content holds can tell."""
        stored = zstandard.ZstdCompressor().compress(plain)
        self.path(reader).write_bytes(stored)
        mpath = self.dest.root / "app" / self.manifest.id / "manifest.json"
        data = json.loads(mpath.read_text())
        for art in data["artifacts"]:
            if art["name"] == reader.art.name:
                art.update(size=len(stored), sha256=hashlib.sha256(stored).hexdigest())
        mpath.write_text(json.dumps(data))
        [self.manifest] = self.dest.list("app")


def backed_up(tmp_path: Path, case: Case) -> tuple[Path, Stored]:
    config = write_job(tmp_path, case.source)
    vigil("run", config=config, check=0)
    return config, Stored(config)


def test_restore_gives_back_what_was_backed_up(tmp_path: Path, case: Case) -> None:
    _, stored = backed_up(tmp_path, case)
    target = case.target()
    done = stored.source().restore_to(stored.readers(), target)
    assert case.read_target(target) == case.read()
    assert done.entries > 0 and done.bytes > 0


def test_deep_verify_passes_an_intact_backup(tmp_path: Path, case: Case) -> None:
    _, stored = backed_up(tmp_path, case)
    readers = stored.readers()
    for reader in readers:
        stored.source().verify_deep(reader, readers)


def test_deep_verify_catches_a_flipped_byte(tmp_path: Path, case: Case) -> None:
    _, stored = backed_up(tmp_path, case)
    main = stored.main()
    flip_byte(stored.path(main))
    with pytest.raises(Damaged, match=main.art.name):
        stored.source().verify_deep(main, stored.readers())


def test_deep_verify_catches_a_cut_short_artifact_whose_checksum_matches(tmp_path: Path, case: Case) -> None:
    """Stored bytes that match the manifest but hold half of what was backed up: a
    producer cut short. Damaged, as every stored thing that does not check out."""
    _, stored = backed_up(tmp_path, case)
    main = stored.main()
    plain = b"".join(main.plain())
    stored.rewrite(main, plain[:len(plain) // 2])
    main = stored.main()
    with pytest.raises(Damaged, match=main.art.name):
        stored.source().verify_deep(main, stored.readers())


def test_restore_refuses_a_non_empty_target_without_force(tmp_path: Path, case: Case) -> None:
    _, stored = backed_up(tmp_path, case)
    target = case.target()
    holds = case.occupy(target)
    before = holds()
    with pytest.raises(VigilError, match="--force"):
        stored.source().restore_to(stored.readers(), target)
    assert holds() == before  # refused before anything was written
    target.force = True
    stored.source().restore_to(stored.readers(), target)
    got = case.read_target(target)
    if target.directory is not None:
        assert got.pop("keep.txt")  # --force restores into the directory; what was there stays
    assert got == case.read()


def test_a_target_of_the_wrong_kind_is_a_usage_error(tmp_path: Path, case: Case) -> None:
    _, stored = backed_up(tmp_path, case)
    wrong = RestoreTarget(file=tmp_path / "x") if case.target().directory else RestoreTarget(directory=tmp_path / "d")
    with pytest.raises(ConfigError, match="source data is a"):
        stored.source().restore_to(stored.readers(), wrong)
    assert not (tmp_path / "x").exists() and not (tmp_path / "d").exists()


def test_deep_verify_reads_a_backup_whose_source_left_the_job(tmp_path: Path, case: Case) -> None:
    """A backup outlives its job's settings: checking what it holds needs none of them."""
    config, _ = backed_up(tmp_path, case)
    text = config.read_text().replace('name = "data"', 'name = "other"')
    config.write_text(text)
    proc = vigil("verify", "app", "latest", "--deep", config=config)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "backup intact" in proc.stdout


@pytest.mark.parametrize("case", ["sqlite", "postgres", "mysql"], indirect=True)
def test_restore_test_of_a_cut_short_dump_is_reported_not_a_crash(tmp_path: Path, case: Case) -> None:
    config, stored = backed_up(tmp_path, case)
    main = stored.main()
    plain = b"".join(main.plain())
    stored.rewrite(main, plain[:len(plain) // 2])
    proc = vigil("verify", "app", "latest", "--restore-test", config=config)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr
    assert f"DAMAGED  local:app/{stored.manifest.id}/{main.art.name}" in proc.stdout


def test_doctor_checks_are_one_line_each(tmp_path: Path, case: Case) -> None:
    config = write_job(tmp_path, case.source)
    [job] = load_config(str(config))
    ctx = SourceContext(job=job, log=logging.getLogger("vigil"), tmp_dir=job.state_dir / "tmp")
    for check in source_for("data", job.source[0].type, ctx).doctor():
        assert check.level in ("OK", "WARNING", "PROBLEM") and "\n" not in check.message
        assert check.level == "OK", check  # the fixtures' servers are up and the tools installed


def test_every_source_type_is_in_the_suite() -> None:
    """Every source type in the suite; a new one needs its entry in CASES."""
    from vigil.sources.base import _KINDS

    assert sorted(CASES) == sorted(_KINDS)

