"""Bad input: one clear line naming the file and the key, exit 2, never a traceback."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from helpers import vigil, vigil_json

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
    "duplicate source": (GOOD.replace('type = "files"', 'type = "files"\nname = "app"')
                         + "[[source]]\ntype = \"sqlite\"\nname = \"app\"\npath = \"db.sqlite\"\n",
                         ["source[1].name", "duplicate", "'app'"]),
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
    from vigil.config.secrets import read_secret
    from vigil.errors import ConfigError

    os.environ.pop("VIGIL_TEST_NOPE", None)
    with pytest.raises(ConfigError, match="password_env.*VIGIL_TEST_NOPE"):
        read_secret("job.toml: source[0]", "password", None, "VIGIL_TEST_NOPE", None)


MYSQL = '[[source]]\ntype = "mysql"\nname = "db"\nuser = "u"\ndatabase = "d"\n'
S3 = '[[destination]]\ntype = "s3"\nname = "off"\nbucket = "backups"\n'
WEBHOOK = '[[notify]]\ntype = "webhook"\nurl = "http://127.0.0.1:9/"\n'
EMAIL = '[[notify]]\ntype = "email"\nfrom = "vigil@example.com"\nto = ["ops@example.com"]\n'

# Values that load today but fail every run (or make health fail), each with the key it must name.
BAD_VALUES = {
    "unknown timezone": ('[retention]\ntimezone = "Mars/Olympus"\nkeep_daily = 7\n', "retention.timezone"),
    "overflowing max_age": ('[health]\nmax_age = "99999999999999d"\n', "health.max_age"),
    "max_age past a century": ('[health]\nmax_age = "40000d"\n', "health.max_age"),
    "overflowing retry delay": ('[retry]\ndelay = "99999999999999d"\n', "retry.delay"),
    "zero max_runtime": ('[health]\nmax_runtime = "0s"\n', "health.max_runtime"),
    "zero hook timeout": ('[hooks]\ntimeout = "0m"\n', "hooks.timeout"),
    "zero notify timeout": (WEBHOOK + 'timeout = "0s"\n', "notify[0].timeout"),
    "NUL in a source path": ('[[source]]\ntype = "files"\nname = "more"\npath = "a\\u0000b"\n', "source[1].path"),
    "NUL in state_dir": ('state_dir = "st\\u0000ate"\n', "state_dir"),
    "NUL in a hook argument": ('[hooks]\nbefore = [["echo", "a\\u0000b"]]\n', "hooks.before[0][1]"),
    "NUL in an exclude": ('[[source]]\ntype = "files"\nname = "more"\npath = "x"\nexclude = ["a\\u0000"]\n',
                          "source[1].exclude[0]"),
    "empty hook program": ('[hooks]\nafter = [["", "up"]]\n', "hooks.after[0][0]"),
    "empty command program": ('[[notify]]\ntype = "command"\nargv = [""]\n', "notify[0].argv[0]"),
    "port out of range": (MYSQL + "port = 70000\n", "source[1].port"),
    "bad source name": ('[[source]]\ntype = "sqlite"\nname = "my db"\npath = "x.db"\n', "source[1].name"),
    "bad password_env": (MYSQL + 'password_env = "DB-PASSWORD"\n', "source[1].password_env"),
    "password_env with a digit first": (MYSQL + 'password_env = "1PASS"\n', "source[1].password_env"),
    "empty database": (MYSQL.replace('database = "d"', 'database = ""'), "source[1].database"),
    "bad s3 key env": (S3 + 'access_key_id_env = "AWS KEY"\n', "destination[1].access_key_id_env"),
    "bad bucket": (S3.replace('"backups"', '"my bucket"'), "destination[1].bucket"),
    "endpoint without scheme": (S3 + 'endpoint_url = "localhost:9000"\n', "destination[1].endpoint_url"),
    "bad passphrase_env": ('[encryption]\npassphrase_env = "$PASS"\n', "encryption.passphrase_env"),
    "bad age recipient": ('[encryption]\nrecipients = ["age1nope"]\n', "encryption.recipients[0]"),
    "webhook ftp url": (WEBHOOK.replace("http://", "ftp://"), "notify[0].url"),
    "webhook url without scheme": (WEBHOOK.replace("http://", ""), "notify[0].url"),
    "webhook bad port": (WEBHOOK.replace(":9/", ":99999/"), "notify[0].url"),
    "header name with a space": (WEBHOOK + '[notify.headers]\n"X Token" = "a"\n', "notify[0].headers"),
    "header value with a newline": (WEBHOOK + '[notify.headers]\nX-A = "a\\nB: c"\n', "notify[0].headers.X-A"),
    "healthchecks url without scheme": ('[[notify]]\ntype = "healthchecks"\nurl = "hc-ping.com/abc"\n',
                                        "notify[0].url"),
    "email from": (EMAIL.replace("vigil@example.com", "vigil"), "notify[0].from"),
    "email to": (EMAIL.replace("ops@example.com", "ops at example.com"), "notify[0].to[0]"),
    "email password_env": (EMAIL + 'password_env = "SMTP.PASSWORD"\n', "notify[0].password_env"),
    "empty smtp_host": (EMAIL + 'smtp_host = ""\n', "notify[0].smtp_host"),
    "missing env_file": ('env_file = "no-such.env"\n', "env_file"),
}


@pytest.mark.parametrize("case", sorted(BAD_VALUES))
@pytest.mark.parametrize("command,code", [(["run"], 2), (["health"], 3)])
def test_bad_value_refused_at_load(tmp_path: Path, case: str, command: list[str], code: int) -> None:
    extra, key = BAD_VALUES[case]
    path = tmp_path / "job.toml"
    path.write_text(extra + GOOD if extra.startswith(("state_dir", "env_file")) else GOOD + extra)
    (tmp_path / "app").mkdir()
    proc = vigil(*command, config=path)
    assert proc.returncode == code, proc
    assert "Traceback" not in proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, proc.stderr
    assert str(path) in lines[0] and f" {key}: " in lines[0], lines[0]
    assert not (tmp_path / "backups").exists()  # refused before any work


def test_unnamed_items_of_one_type_get_numbered_names(tmp_path: Path) -> None:
    for d in ("a", "b", "c"):
        (tmp_path / d).mkdir()
        (tmp_path / d / "f.txt").write_text(d)
    path = tmp_path / "job.toml"
    path.write_text('[[source]]\ntype = "files"\npath = "a"\n[[source]]\ntype = "files"\npath = "b"\n'
                    '[[source]]\ntype = "files"\nname = "mine"\npath = "c"\n'
                    '[[destination]]\ntype = "local"\npath = "backups"\n'
                    '[[destination]]\ntype = "local"\npath = "more"\n')
    vigil("run", config=path, check=0)
    rows = vigil_json("list", config=path)
    assert sorted(r["destination"] for r in rows) == ["local", "local-2"]
    tars = sorted(a for a in rows[0]["artifacts"] if a.endswith(".tar.zst"))
    assert tars == ["files-files-2.tar.zst", "files-files.tar.zst", "files-mine.tar.zst"]


def test_explicit_name_equal_to_a_default_name_names_both(tmp_path: Path) -> None:
    path = tmp_path / "job.toml"
    path.write_text(GOOD + '[[notify]]\ntype = "command"\nname = "webhook"\nargv = ["true"]\n'
                    '[[notify]]\ntype = "webhook"\nurl = "http://127.0.0.1:9/"\n')
    assert_one_line(vigil("run", config=path), str(path), "notify[1].name", "notify[0] is named 'webhook'",
                    "notify[1] is the default name 'webhook'", "give the unnamed one a name")
