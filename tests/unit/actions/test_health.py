"""Health evaluation is pure: facts and a clock in, status and reasons out."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from hypothesis import given, settings
from hypothesis import strategies as st

from vigil.actions.health import (
    CRITICAL,
    OK,
    WARNING,
    Facts,
    JobHealth,
    Newest,
    evaluate,
    render_nagios,
    render_prometheus,
    transition,
)
from vigil.state.journal import RunRow, VerifyRow

NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
T = NOW.timestamp()


def run(i: int, start: float, end: float | None, outcome: str = "success", by: str = "/usr/sbin/cron -f",
        **kw) -> RunRow:
    return RunRow(f"r{i}", "api", 100 + i, "web1", start, outcome=outcome, finished_at=end, started_by=by, **kw)


def facts(ages_h=(1.0, 4.0), sizes=(100, 100), runs=(), **kw) -> Facts:
    dest = Newest("local", times=[NOW - timedelta(hours=a) for a in ages_h], sizes=list(sizes))
    base = dict(job="api", max_age=timedelta(hours=3), max_runtime=timedelta(hours=2), destinations=[dest],
                runs=list(runs))
    base.update(kw)
    return Facts(**base)


def test_fresh_backup_is_ok() -> None:
    h = evaluate(facts(runs=[run(1, T - 3600, T - 3500)]), NOW)
    assert (h.status, h.reasons) == (OK, [])
    assert h.last_backup_bytes == 100 and h.last_success_at == NOW - timedelta(hours=1)


def test_critical_cases() -> None:
    assert evaluate(facts(ages_h=()), NOW).status == CRITICAL
    old = evaluate(facts(ages_h=(5, 8)), NOW)
    assert old.status == CRITICAL and "5h" in old.reasons[0] and "max_age 3h" in old.reasons[0]
    failed = evaluate(facts(runs=[run(2, T - 60, T - 30, "failed", step="source:db", error="boom"),
                                  run(1, T - 3600, T - 3500)]), NOW)
    assert failed.status == CRITICAL and "source:db" in failed.reasons[0] and "boom" in failed.reasons[0]
    died = evaluate(facts(runs=[run(3, T - 60, None, "running", step="source:app")], lock_held=False), NOW)
    assert died.status == CRITICAL and "died" in died.reasons[0]
    unreachable = facts()
    unreachable.destinations.append(Newest("s3", error="connection refused"))
    assert "unreachable" in evaluate(unreachable, NOW).reasons[0]


def test_warning_cases() -> None:
    stuck = evaluate(facts(runs=[run(1, T - 3 * 3600, None, "running", step="source:app")], lock_held=True), NOW)
    assert stuck.status == WARNING and "max_runtime" in stuck.reasons[0]
    assert evaluate(facts(sizes=(40, 100)), NOW).status == WARNING
    assert evaluate(facts(stuck_notifications=2), NOW).reasons == [
        "2 notification(s) stuck in the outbox (see `vigil notify flush`)"]
    warned = evaluate(facts(runs=[run(1, T - 100, T - 50, warnings=["files source app: x changed"])]), NOW)
    assert warned.status == WARNING and "x changed" in warned.reasons[0]


def test_three_starts_in_one_second_name_their_starters() -> None:
    runs = [run(1, T - 600, T - 500, by="/usr/sbin/cron -f"),
            run(2, T - 599.8, T - 599.8, "skipped", by="/lib/systemd/systemd --system"),
            run(3, T - 599.5, T - 599.5, "skipped", by="/bin/sh -c /var/www/api/backup.sh")]
    h = evaluate(facts(runs=runs[::-1]), NOW)
    assert h.status == WARNING
    [reason] = h.reasons
    assert "3 attempts overlapped" in reason
    for starter in ("/usr/sbin/cron -f", "/lib/systemd/systemd --system", "/bin/sh -c /var/www/api/backup.sh"):
        assert starter in reason


def test_a_rerun_after_the_previous_ended_is_no_duplicate() -> None:
    runs = [run(2, T - 499, T - 400), run(1, T - 600, T - 500)]
    assert evaluate(facts(runs=runs), NOW).status == OK


spans = st.lists(st.tuples(st.floats(1, 3000), st.floats(0, 3000)), min_size=1, max_size=12)


@settings(max_examples=300, deadline=None)
@given(gaps=spans)
def test_sequential_histories_never_warn_of_duplicates(gaps) -> None:
    runs, t = [], T - 80000
    for i, (gap, length) in enumerate(gaps):
        start = t + gap
        runs.append(run(i, start, start + length))
        t = start + length
    h = evaluate(facts(runs=runs[::-1]), datetime.fromtimestamp(max(T, t + 1), UTC))
    assert not any("overlapped" in r for r in h.reasons)


@settings(max_examples=300, deadline=None)
@given(gaps=spans, which=st.integers(0, 11), into=st.floats(0.0, 0.99))
def test_a_start_inside_another_run_is_always_seen(gaps, which, into) -> None:
    runs, t = [], T - 80000
    for i, (gap, length) in enumerate(gaps):
        start = t + gap
        runs.append(run(i, start, start + length + 1))
        t = start + length + 1
    host = runs[which % len(runs)]
    start = host.started_at + into * (host.finished_at - host.started_at)
    runs.append(run(99, start, start, "skipped", by="duplicate-starter"))
    h = evaluate(facts(runs=sorted(runs, key=lambda r: -r.started_at)),
                 datetime.fromtimestamp(max(T, t + 1), UTC))
    assert any("overlapped" in r and "duplicate-starter" in r for r in h.reasons)


def test_transitions() -> None:
    six = timedelta(hours=6)
    assert transition(None, CRITICAL, None, T, six) == "unhealthy"  # bad when first seen
    assert transition(None, OK, None, T, six) is None
    assert transition(OK, WARNING, None, T, six) == "unhealthy"
    assert transition(WARNING, CRITICAL, T - 60, T, six) == "unhealthy"  # worse
    assert transition(CRITICAL, CRITICAL, T - 60, T, six) is None  # already said
    assert transition(CRITICAL, CRITICAL, T - 7 * 3600, T, six) == "unhealthy"  # renotify
    assert transition(CRITICAL, OK, T - 60, T, six) == "recovered"
    assert transition(OK, OK, T - 60, T, six) is None


NAGIOS = re.compile(r"^VIGIL (OK|WARNING|CRITICAL|UNKNOWN) - [^|\n]+( \| (('[^']+'|[^ =']+)=-?[\d.]+(s|B|%|KB|MB|TB|c)?"
                    r"(;[\d.]*){0,4} ?)+)?$")


def test_nagios_line_follows_the_plugin_format() -> None:
    ok = render_nagios([evaluate(facts(), NOW)])
    bad = render_nagios([evaluate(facts(ages_h=(5,)), NOW), JobHealth("db", CRITICAL, ["a | pipe"])])
    for line in (ok, bad):
        assert "\n" not in line and NAGIOS.match(line), line
    assert ok.startswith("VIGIL OK - ") and ok.endswith(" | age=3600s;;10800;0; size=100B;;;0;"), ok
    assert bad.startswith("VIGIL CRITICAL - ")


PROM_LINE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)\{job="((?:[^"\\]|\\.)*)"\} (-?[0-9.e+]+)$')


def test_prometheus_exposition_parses() -> None:
    text = render_prometheus([evaluate(facts(), NOW), JobHealth('we"ird\\job', CRITICAL, ["x"])])
    assert text.endswith("\n")
    samples, typed = {}, set()
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split(" ")
            assert kind == "gauge"
            typed.add(name)
        elif not line.startswith("# HELP "):
            m = PROM_LINE.match(line)
            assert m, line
            assert m.group(1) in typed
            samples[(m.group(1), m.group(2))] = float(m.group(3))
    assert samples[("vigil_health_status", "api")] == 0
    assert samples[("vigil_health_status", 'we\\"ird\\\\job')] == 2
    assert samples[("vigil_last_success_timestamp_seconds", "api")] == (NOW - timedelta(hours=1)).timestamp()
    assert ("vigil_last_backup_bytes", "api") in samples and ("vigil_last_run_duration_seconds", "api") not in samples


# --- the schedule's grace window ----------------------------------------------------------


def at(*args: int, tz=UTC) -> datetime:
    return datetime(*args, tzinfo=tz)


def scheduled(newest: datetime, cron: str = "0 19 * * *", runs=(), tz=UTC, **kw) -> Facts:
    dest = Newest("local", times=[newest], sizes=[100], ids=["newest"])
    return Facts(job="api", max_age=None, max_runtime=timedelta(hours=6), destinations=[dest], runs=list(runs),
                 schedule=cron, grace=timedelta(hours=3), tz=tz, **kw)


def test_a_missed_daily_backup_is_critical_three_hours_after_it_was_due() -> None:
    f = scheduled(at(2026, 11, 25, 19, 0, 5))
    assert evaluate(f, at(2026, 11, 26, 21, 59)).status == OK
    assert evaluate(f, at(2026, 11, 26, 22, 0, 0)).status == OK  # "more than" grace: not at the mark
    late = evaluate(f, at(2026, 11, 26, 22, 0, 6))
    assert late.status == CRITICAL
    assert late.reasons == ["destination local: the backup due at 2026-11-26 19:00:00 UTC is missing "
                            "(3h6s late, grace 3h; newest started 2026-11-25 19:00:05 UTC)"]
    # The next day's backup resets the window.
    assert evaluate(scheduled(at(2026, 11, 26, 19, 0, 4)), at(2026, 11, 27, 21, 0)).status == OK


def test_a_three_hourly_schedule() -> None:
    f = scheduled(at(2026, 11, 26, 9, 0, 2), cron="0 */3 * * *")
    assert evaluate(f, at(2026, 11, 26, 14, 59, 59)).status == OK
    assert evaluate(f, at(2026, 11, 26, 15, 0, 1)).status == CRITICAL  # the 12:00 run never committed
    after_noon = scheduled(at(2026, 11, 26, 12, 0, 3), cron="0 */3 * * *")
    assert evaluate(after_noon, at(2026, 11, 26, 15, 0, 1)).status == OK


def test_the_schedule_is_read_in_the_hosts_zone() -> None:
    berlin = ZoneInfo("Europe/Berlin")  # 19:00 in Berlin is 18:00 UTC in November
    f = scheduled(at(2026, 11, 25, 19, 0, 5, tz=berlin), tz=berlin)
    assert evaluate(f, at(2026, 11, 26, 20, 59, tz=UTC)).status == OK
    late = evaluate(f, at(2026, 11, 26, 21, 0, 6, tz=UTC))
    assert late.status == CRITICAL and "due at 2026-11-26 19:00:00 CET" in late.reasons[0]


def test_a_live_run_that_started_in_the_window_has_max_runtime_to_commit() -> None:
    due = at(2026, 11, 26, 19, 0).timestamp()
    live = run(7, due + 4, None, "running", step="source:db")
    f = scheduled(at(2026, 11, 25, 19, 0, 5), runs=[live], lock_held=True)
    assert evaluate(f, at(2026, 11, 26, 22, 30)).status == OK  # 3h30m in: still on its way
    stuck = evaluate(f, at(2026, 11, 27, 1, 0, 5))  # max_runtime 6h is over
    assert stuck.status == CRITICAL and "due at 2026-11-26 19:00:00 UTC is missing" in stuck.reasons[0]
    assert any("max_runtime" in r for r in stuck.reasons)
    # Dead (the lock is free): no extension, and the death is a reason of its own.
    dead = evaluate(scheduled(at(2026, 11, 25, 19, 0, 5), runs=[live], lock_held=False), at(2026, 11, 26, 22, 30))
    assert dead.status == CRITICAL and "missing" in dead.reasons[0] and "died" in dead.reasons[1]
    # Started after the window had closed: too late to excuse anything.
    late_start = run(8, due + 3 * 3600 + 60, None, "running", step="source:db")
    f = scheduled(at(2026, 11, 25, 19, 0, 5), runs=[late_start], lock_held=True)
    assert evaluate(f, at(2026, 11, 26, 22, 30)).status == CRITICAL


def test_without_a_schedule_max_age_decides() -> None:
    f = facts(ages_h=(24.9,), sizes=(100,), max_age=timedelta(hours=25))
    assert evaluate(f, NOW).status == OK
    assert evaluate(facts(ages_h=(25.1,), sizes=(100,), max_age=timedelta(hours=25)), NOW).status == CRITICAL


def test_an_explicit_max_age_holds_with_a_schedule_too() -> None:
    f = scheduled(at(2026, 11, 26, 19, 0, 5))
    f.max_age = timedelta(hours=2)
    h = evaluate(f, at(2026, 11, 26, 21, 30))
    assert h.status == CRITICAL and h.reasons == ["destination local: newest backup is 2h29m old (max_age 2h)"]


# --- what the last verify found -----------------------------------------------------------


def verified(backup_id: str, ok: bool, when: float, destination: str = "local") -> VerifyRow:
    return VerifyRow("api", backup_id, destination, ok, None if ok else "checksum mismatch", when)


def test_a_newest_backup_found_damaged_is_critical_until_a_newer_one_exists() -> None:
    f = facts()
    f.destinations[0].ids = ["b2", "b1"]
    f.verifications = [verified("b2", False, T - 60)]
    h = evaluate(f, NOW)
    assert h.status == CRITICAL
    assert h.reasons == ["destination local: newest backup b2 was found damaged by verify at "
                         "2026-11-26T11:59:00.000Z: checksum mismatch"]
    f.verifications = [verified("b2", True, T - 30), verified("b2", False, T - 60)]  # verified again: intact
    assert evaluate(f, NOW).status == OK
    f.verifications = [verified("b1", False, T - 60)]  # an older backup: the newest is good
    assert evaluate(f, NOW).status == OK
    f.verifications = [verified("b2", False, T - 60, destination="offsite")]  # another copy
    assert evaluate(f, NOW).status == OK


# --- duplicates ---------------------------------------------------------------------------


def test_a_run_that_died_is_no_duplicate_of_the_run_that_found_it_dead() -> None:
    # kill -9 at about T-3000; the next run starts at T-600 and marks it died a moment later.
    died = run(1, T - 3600, T - 599.9, "died", step="source:app")
    nxt = run(2, T - 600, T - 500)
    h = evaluate(facts(runs=[nxt, died]), NOW)
    assert (h.status, h.reasons) == (OK, [])
    # A skipped attempt while it was still alive is a duplicate all the same.
    skipped = run(3, T - 3500, T - 3500, "skipped", by="/bin/sh -c backup.sh")
    h = evaluate(facts(runs=[nxt, skipped, died]), NOW)
    assert h.status == WARNING and "2 attempts overlapped" in h.reasons[0] and "backup.sh" in h.reasons[0]


def test_a_backup_dated_in_the_future_is_a_warning_not_freshness() -> None:
    # A wrong clock dated the newest backup a year ahead; the one before it is 5 h old (max_age 3 h).
    skewed = evaluate(facts(ages_h=(-24 * 365, 5.0)), NOW)
    assert skewed.status == CRITICAL
    assert any("newest backup is dated in the future" in r and "clock skew?" in r for r in skewed.reasons)
    assert any("max_age 3h" in r for r in skewed.reasons)
    only = evaluate(scheduled(at(2099, 1, 1)), NOW)
    assert only.status == CRITICAL and "destination local: no complete backup dated before now" in only.reasons
    # A few minutes ahead is an ordinary clock: fresh, no warning.
    assert evaluate(facts(ages_h=(-0.05, 4.0)), NOW).status == OK
    reported = evaluate(facts(reported_at=NOW + timedelta(days=2)), NOW)
    assert reported.status == WARNING and "clock skew?" in reported.reasons[0]


def test_a_died_run_has_no_duration() -> None:
    # Found dead a day after it started: its finished_at is the finding, not the run's end.
    died = run(2, T - 86400, T - 60, "died", step="source:app")
    h = evaluate(facts(runs=[died, run(1, T - 90000, T - 89900)]), NOW)
    assert h.status == CRITICAL and h.last_run_duration is None
    assert evaluate(facts(runs=[run(1, T - 3600, T - 3500)]), NOW).last_run_duration == 100
