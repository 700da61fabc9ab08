"""Health evaluation is pure: facts and a clock in, status and reasons out."""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone

from hypothesis import given, settings, strategies as st

from vigil.actions.health import (
    CRITICAL, OK, WARNING, Facts, JobHealth, Newest, evaluate, render_nagios, render_prometheus, transition,
)
from vigil.state.journal import RunRow

NOW = datetime(2026, 11, 26, 12, 0, tzinfo=timezone.utc)
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
    h = evaluate(facts(runs=runs[::-1]), datetime.fromtimestamp(max(T, t + 1), timezone.utc))
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
                 datetime.fromtimestamp(max(T, t + 1), timezone.utc))
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
