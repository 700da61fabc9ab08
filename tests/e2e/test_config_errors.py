"""Bad input: one clear line naming the file and the key, exit 2, never a traceback."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from helpers import vigil

GOOD = """
[[source]]
type = "files"
path = "app"
[[destination]]
type = "local"
path = "backups"
"""

CASES = {
    "unknown key": (GOOD + "[retention]\nkeep_dayly = 7\n", ["retention.keep_dayly", "unknown key"]),
    "wrong type": (GOOD + "[retry]\nattempts = \"three\"\n", ["retry.attempts", "integer"]),
    "bad duration": (GOOD + "[health]\nmax_age = \"3 hours\"\n", ["health.max_age", "duration"]),
    "duplicate source": (GOOD + "[[source]]\ntype = \"files\"\npath = \"other\"\n", ["source[1].name", "duplicate"]),
    "toml syntax": ("[[source]\ntype = ", ["TOML"]),
    "unknown source type": (GOOD.replace('"files"', '"ftp"'), ["source[0]", "ftp"]),
    "missing destination": ("[[source]]\ntype = \"files\"\npath = \"app\"\n", ["destination", "missing"]),
    "bad cron": (GOOD + "[schedule]\ncron = \"99 * * * *\"\n", ["schedule.cron"]),
    "out of range": (GOOD + "[retry]\nattempts = 0\n", ["retry.attempts", ">= 1"]),
    "unknown event": (GOOD + "[[notify]]\ntype = \"webhook\"\nurl = \"http://127.0.0.1:9/\"\non = [\"failur\"]\n",
                      ["notify[0].on[0]", "'failur'", "failure"]),
    "empty command": (GOOD + "[hooks]\nbefore = [[]]\n", ["hooks.before[0]", "must not be empty"]),
    "path not a string": ("state_dir = 5\n" + GOOD, ["state_dir", "path"]),
}


def assert_one_line(proc, *needles: str) -> None:
    assert proc.returncode == 2, proc
    assert "Traceback" not in proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, proc.stderr
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])


@pytest.mark.parametrize("case", sorted(CASES))
@pytest.mark.parametrize("command", [["run"], ["list"], ["runs"]])
def test_bad_config(tmp_path: Path, case: str, command: list[str]) -> None:
    text, needles = CASES[case]
    path = tmp_path / "job.toml"
    path.write_text(text)
    assert_one_line(vigil(*command, config=path), str(path), *needles)


def test_missing_file(tmp_path: Path) -> None:
    assert_one_line(vigil("run", config=tmp_path / "nope.toml"), "nope.toml", "not found")


def test_directory_without_toml(tmp_path: Path) -> None:
    (tmp_path / "README").write_text("x")
    assert_one_line(vigil("list", config=tmp_path), str(tmp_path), "*.toml")


def test_dangling_symlink(tmp_path: Path) -> None:
    (tmp_path / "job.toml").symlink_to(tmp_path / "gone.toml")
    assert_one_line(vigil("list", config=tmp_path), "job.toml", "dangling symlink")
    assert_one_line(vigil("list", config=tmp_path / "job.toml"), "job.toml", "dangling symlink")


def test_unknown_job(tmp_path: Path) -> None:
    path = tmp_path / "job.toml"
    path.write_text(GOOD)
    assert_one_line(vigil("run", "nosuchjob", config=path), "nosuchjob")


def test_config_from_environment(tmp_path: Path) -> None:
    path = tmp_path / "job.toml"
    path.write_text(GOOD.replace("[[source]]", "bogus = 1\n[[source]]"))
    assert_one_line(vigil("list", env={"VIGIL_CONFIG": str(path)}), str(path), "bogus")


def test_bad_arguments_are_one_line() -> None:
    assert_one_line(vigil("run", "--no-such-flag"), "--no-such-flag")
    assert_one_line(vigil("--log-format", "xml", "list"), "xml")


def test_version() -> None:
    proc = vigil("--version", check=0)
    assert proc.stdout.startswith("vigil ")


def test_duplicate_job_names_in_directory(tmp_path: Path) -> None:
    (tmp_path / "a.toml").write_text('name = "same"\n' + GOOD)
    (tmp_path / "b.toml").write_text('name = "same"\n' + GOOD)
    assert_one_line(vigil("list", config=tmp_path), "same")


def test_secret_env_missing_names_the_key(tmp_path: Path) -> None:
    from vigil.config.schema import ConfigError, read_secret

    os.environ.pop("VIGIL_TEST_NOPE", None)
    with pytest.raises(ConfigError, match="password_env.*VIGIL_TEST_NOPE"):
        read_secret("job.toml: source[0]", "password", None, "VIGIL_TEST_NOPE", None)
