"""Schedules as cron lines and systemd units: conversion, quoting, and which
existing cron lines run a job."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest
from helpers import cron_sh, systemd_analyze, systemd_reading
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from vigil.actions.schedule import (
    cron_command,
    cron_to_on_calendar,
    cron_word,
    runs_job,
    shell_words,
    systemd_word,
    systemd_words,
)
from vigil.config.load import parse_job
from vigil.config.schema import Job


def job(**kw) -> Job:
    return parse_job({"name": "api", "source": [{"type": "files", "path": "/x"}],
                     "destination": [{"type": "local", "path": "/b"}], **kw})


@pytest.mark.parametrize("cron,cal", [
    ("0 19 * * *", "*-*-* 19:00:00"),
    ("0 */3 * * *", "*-*-* 00/3:00:00"),
    ("*/15 * * * *", "*-*-* *:00/15:00"),
    ("30 2 * * 1-5", "Mon..Fri *-*-* 02:30:00"),
    ("0 4 1 * *", "*-*-01 04:00:00"),
    ("@daily", "*-*-* 00:00:00"),
])
def test_cron_to_on_calendar(cron: str, cal: str) -> None:
    assert cron_to_on_calendar(cron) == [cal]


@pytest.mark.parametrize("command,expected", [
    ("/usr/local/bin/vigil run api", True),
    ("vigil --config /etc/vigil/jobs run", True),  # every job, this one included
    ("vigil run other", False),
    ("vigil health --notify api", False),  # a health check is not a backup schedule
    ("cd / && /opt/vigil/bin/vigil -q run api >> /var/log/v.log 2>&1", True),
    ("python3 -m vigil run api", True),
    ("/var/www/api/scripts/backup-run.sh", True),  # the legacy script
    ("/usr/bin/certbot renew", False),
])
def test_runs_job(command: str, expected: bool) -> None:
    assert runs_job(command, job(legacy_commands=["/var/www/api/scripts/backup-run.sh"])) is expected


# --- quoting for cron and systemd --------------------------------------------------------------------------------

NASTY = ["/srv/my jobs/app.toml", "/srv/50% off/app.toml", "/srv/$HOME/x", "/srv/cfg x;touch $HOME/PWNED;#",
         "/srv/it's \"q\"", "/srv/back\\slash", "/srv/back\\%pct", "/srv/%%d %n", "/srv/tab\there", "/srv/`id`",
         "/srv/${PATH}", "/srv/a'b\\\"c", "/srv/ spaced ", "/srv/%", "/srv/\\"]
words = st.text(st.characters(blacklist_categories=["Cs"], blacklist_characters="\0\n\r"), max_size=30)


@pytest.fixture(scope="module")
def recorder(tmp_path_factory) -> tuple[Path, Path]:
    d = tmp_path_factory.mktemp("rec")
    fake = d / "fake vigil"
    fake.write_text("#!/bin/sh\nfor a in \"$@\"; do printf '%s\\0' \"$a\"; done > \"$REC\"\n")
    fake.chmod(0o755)
    return fake, d / "argv"


def run_cron_line(words_: list[str], recorder: tuple[Path, Path], home: Path) -> list[str]:
    fake, rec = recorder
    line = " ".join(cron_word(w) for w in [str(fake), *words_])
    subprocess.run(["sh", "-c", cron_sh(line)], check=True, cwd=home,
                   env={"PATH": "/usr/bin:/bin", "HOME": str(home), "REC": str(rec)})
    return [w.decode() for w in rec.read_bytes().split(b"\0")[:-1]]


@pytest.mark.parametrize("path", NASTY)
def test_cron_word_is_one_argument(path: str, recorder, tmp_path: Path) -> None:
    argv = ["--config", path, "run", "app"]
    assert run_cron_line(argv, recorder, tmp_path) == argv
    assert not (tmp_path / "PWNED").exists()


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(words, min_size=1, max_size=3))
def test_cron_words_any_text(recorder, tmp_path: Path, ws: list[str]) -> None:
    assert run_cron_line(ws, recorder, tmp_path) == ws


def test_cron_command_matches_crons_rule() -> None:
    assert cron_command(r"echo a\%b\\%c") == "echo a%b\\\\"
    assert cron_command("date +%s") == "date +"
    assert shell_words(cron_command(cron_word("/x/50%") + " run")) == ["/x/50%", "run"]


@pytest.mark.parametrize("path", NASTY)
def test_systemd_word_is_one_argument(path: str) -> None:
    argv = ["/opt/vigil/bin/vigil", "--config", path, "run", "app"]
    line = " ".join(systemd_word(w) for w in argv)
    assert systemd_reading(line) == argv
    assert systemd_words(line) == argv  # what doctor reads back
    bare = re.sub(r"%%|\$\$", "", line)
    assert "%" not in bare and "$" not in bare  # no specifier or variable left for systemd to expand


@given(st.lists(words, min_size=1, max_size=3))
def test_systemd_words_any_text(ws: list[str]) -> None:
    argv = ["/opt/vigil/bin/vigil", *ws]  # an ExecStart= always starts with the absolute executable
    line = " ".join(systemd_word(w) for w in argv)
    assert systemd_words(line) == argv
    assert systemd_reading(line) == argv


@pytest.mark.parametrize("path", NASTY)
def test_systemd_analyze_verify_accepts(path: str, recorder, tmp_path: Path) -> None:
    fake, _ = recorder
    unit = tmp_path / "t.service"
    unit.write_text("[Service]\nType=oneshot\nExecStart="
                    + " ".join(systemd_word(w) for w in [str(fake), "--config", path, "run", "app"]) + "\n")
    proc = subprocess.run([systemd_analyze(), "verify", str(unit)], capture_output=True, text=True,
                          env={**os.environ, "SYSTEMD_UNIT_PATH": f"{tmp_path}:", "HOME": str(tmp_path)})
    assert proc.returncode == 0, proc.stderr
    assert not (tmp_path / "PWNED").exists()
