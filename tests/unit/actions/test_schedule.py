"""Schedule parsing and conversion (pure parts)."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from croniter import croniter

from vigil.actions.schedule import cron_to_on_calendar, runs_job
from vigil.config.load import parse_job
from vigil.config.schema import Job
from vigil.formats.calendar import Calendar


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


@pytest.mark.parametrize("cal,cron", [("daily", "0 0 * * *"), ("*-*-* 19:00:00", "00 19 * * *"),
                                      ("*:0/15", "0-59/15 * * * *"), ("Mon *-*-* 03:00", "00 03 * * 1")])
def test_on_calendar_fires_like_cron(cal: str, cron: str) -> None:
    start = datetime(2026, 1, 5)
    spec = Calendar.parse(cal)
    assert spec is not None
    it = croniter(cron, start - timedelta(minutes=1))
    expected = [it.get_next(datetime) for _ in range(30)]
    assert list(spec.fires(start, expected[-1] + timedelta(seconds=1))) == expected


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
