"""Without the s3 or apprise extra, a job that needs one says which to install, in one line."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
from helpers import files_job_body, vigil

# Loaded by Python at start-up from PYTHONPATH: the import system then finds these
# packages nowhere, as on a machine where the extra was never installed.
HIDE = textwrap.dedent("""
    import importlib.machinery

    _HIDDEN = {"boto3", "botocore", "apprise"}
    _find = importlib.machinery.PathFinder.find_spec

    def _find_spec(name, path=None, target=None):
        if name.partition(".")[0] in _HIDDEN:
            return None
        return _find(name, path, target)

    importlib.machinery.PathFinder.find_spec = staticmethod(_find_spec)
""")


@pytest.fixture
def without_extras(tmp_path: Path) -> dict[str, str]:
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(HIDE)
    return {"PYTHONPATH": str(site)}


@pytest.mark.parametrize("table,extra,key", [
    ('[[destination]]\ntype = "s3"\nname = "offsite"\nbucket = "b"\n', "s3", "destination[1].type"),
    ('[[notify]]\ntype = "apprise"\nurls = ["json://127.0.0.1:9/"]\n', "apprise", "notify[0].type"),
])
def test_a_missing_extra_is_one_line_naming_it(tmp_path, make_job, app_tree, without_extras, table, extra, key):
    job = make_job(files_job_body(app_tree, tmp_path / "backups") + table)
    for command, code in (("run", 2), ("health", 3)):
        proc = vigil(command, config=job, env=without_extras)
        assert proc.returncode == code, proc.stderr
        [line] = proc.stderr.splitlines()
        assert line.startswith(f"vigil: error: {job}: {key}: "), line
        assert line.endswith(f"is not installed: pip install 'vigil-backup[{extra}]'"), line
    assert not (tmp_path / "backups").exists()  # refused before any work


def test_the_same_job_loads_with_the_extras(tmp_path, make_job, app_tree):
    job = make_job(files_job_body(app_tree, tmp_path / "backups")
                   + '[[notify]]\ntype = "apprise"\nurls = ["json://127.0.0.1:9/"]\n')
    proc = vigil("doctor", "--root", str(tmp_path / "empty-root"), config=job)
    assert "needs apprise" not in proc.stdout + proc.stderr and "Traceback" not in proc.stderr
