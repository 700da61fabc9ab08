"""Judging a job folder of a fleet by its own thresholds (SPEC §5, §13): pure, time passed in."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from gen_history import status_and_manifest

from vigil.actions.fleet import deadline, facts, judge, zone
from vigil.destinations.fleet import JobFolder
from vigil.formats.manifest import Manifest

NOW = datetime(2026, 12, 4, 20, 0, tzinfo=UTC)


def folder(age=timedelta(hours=2), outcome="success", schedule="0 */6 * * *", **status) -> JobFolder:
    bid, st, m = status_and_manifest("api", "web1", NOW, outcome=outcome, age=age, schedule=schedule)
    f = JobFolder("web1/api", "api", status={**json.loads(st), **status})
    f.newest = Manifest.loads(m, expect_id=bid, expect_job="api")
    return f


def test_a_fresh_successful_job_is_ok_and_names_its_host():
    h = judge(folder(), NOW)
    assert (h.status, h.reasons, h.host, h.job) == ("OK", [], "web1", "web1/api")


def test_its_own_schedule_and_grace_decide_freshness():
    # Newest at 13:00; the 18:00 run was due, grace 3h: on time until 21:00, missing after.
    f = folder(age=timedelta(hours=7))
    assert judge(f, NOW).status == "OK"
    late = judge(f, NOW + timedelta(hours=1, seconds=1))
    assert late.status == "CRITICAL" and "the backup due at 2026-12-04 18:00:00 UTC is missing" in late.reasons[0]
    # The same job with one hour of grace is already late.
    assert judge(folder(age=timedelta(hours=7), grace_seconds=3600.0), NOW).status == "CRITICAL"


def test_the_schedule_is_read_in_the_hosts_zone():
    # "0 19 * * *" in Paris is 18:00 UTC in winter: newest yesterday, grace 1h, now 20:00 UTC.
    f = folder(age=timedelta(hours=25), schedule="0 19 * * *", grace_seconds=3600.0, timezone="Europe/Paris")
    assert "18:00:00 UTC" not in " ".join(judge(f, NOW).reasons)
    assert "19:00:00 CET" in " ".join(judge(f, NOW).reasons)
    assert zone({"utc_offset_seconds": 3600}).utcoffset(NOW) == timedelta(hours=1)
    assert zone({"timezone": "Not/AZone"}) == UTC


def test_without_a_schedule_max_age_decides():
    f = folder(age=timedelta(hours=26), schedule=None, max_age_seconds=None)
    h = judge(f, NOW)
    assert h.status == "CRITICAL" and "max_age 1d1h" in h.reasons[0]  # the 25 h default
    assert judge(folder(age=timedelta(hours=26), schedule=None, max_age_seconds=30 * 3600.0), NOW).status == "OK"


def test_a_failed_or_died_last_run_is_critical():
    for outcome in ("failed", "died", "interrupted"):
        h = judge(folder(outcome=outcome, error="disk full"), NOW)
        assert h.status == "CRITICAL" and f" {outcome} at step source:app" in h.reasons[0]


def test_a_damaged_newest_backup_is_critical():
    from vigil.destinations.base import DamagedBackup

    f = folder()
    f.damaged = DamagedBackup("20261204T190000Z-abcdef", "manifest.json: not JSON")
    assert "newest backup is damaged: 20261204T190000Z-abcdef" in judge(f, NOW).reasons[0]


def test_a_status_that_stopped_changing_is_critical():
    f = folder(age=timedelta(days=2))
    reasons = judge(f, NOW).reasons
    assert any(r.startswith("no run has reported since the one started 2026-12-02 20:00:00 UTC") for r in reasons)
    # The report of a run is judged even when the backups are fresh (they came from elsewhere).
    f.status["started_at"] = (NOW - timedelta(days=2)).isoformat()
    f.newest = folder().newest
    assert [r for r in judge(f, NOW).reasons if r.startswith("no run has reported")]


def test_a_status_object_that_is_not_vigils_is_a_warning_not_a_crash():
    for bad in ({"outcome": "exploded"}, {"schedule": "every tuesday"}, {"grace_seconds": "3h"},
                {"started_at": "yesterday"}, {"max_age_seconds": -5}):
        h = judge(folder(**bad), NOW)
        assert h.status == "WARNING" and h.reasons[-1].startswith("status.json: "), (bad, h.reasons)
    broken = JobFolder("x", "x", status_error="status.json: not a JSON object")
    assert judge(broken, NOW).status == "CRITICAL"  # and no backup at all
    assert "status.json: not a JSON object" in judge(broken, NOW).reasons


def test_no_backup_or_an_unreadable_folder_is_critical():
    assert judge(JobFolder("a", "a", status=None), NOW).reasons == ["no complete backup"]
    h = judge(JobFolder("a", "a", error="cannot list s3://b/a/: AccessDenied"), NOW)
    assert h.status == "CRITICAL" and h.reasons == ["unreadable: cannot list s3://b/a/: AccessDenied"]


def test_deadline_is_the_due_run_plus_grace():
    f, _ = facts(folder(age=timedelta(hours=7)))
    assert deadline(f) == datetime(2026, 12, 4, 21, 0, tzinfo=UTC)


def test_one_bad_threshold_does_not_hide_a_failed_last_run():
    h = judge(folder(outcome="failed", max_runtime_seconds="6h", grace_seconds=7200), NOW)
    assert h.status == "CRITICAL" and any("failed at step source:app" in r for r in h.reasons), h.reasons
    assert "status.json: max_runtime_seconds: '6h' is not what vigil writes" in h.reasons
    # The other thresholds still count: grace 2h, so the 18:00 run is missing by 20:00.
    f, problems = facts(folder(age=timedelta(hours=7), grace_seconds=7200, max_age_seconds="1d"))
    assert f.grace == timedelta(hours=2) and f.schedule == "0 */6 * * *" and len(problems) == 1
    # A bad detail of the last run does not lose the run: it failed, and that is said.
    h = judge(folder(outcome="failed", step=["x"]), NOW)
    assert h.status == "CRITICAL" and "status.json: step: \"['x']\" is not what vigil writes" in h.reasons, h.reasons
