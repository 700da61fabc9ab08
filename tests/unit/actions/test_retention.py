"""Retention: borg prune semantics, checked by hand and by properties."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import msgspec
from hypothesis import given, settings
from hypothesis import strategies as st

from vigil.actions.retention import Backup, decide
from vigil.config.schema import Retention

UTC = UTC


def hourly_year(end: datetime) -> list[Backup]:
    return [Backup(f"b{i:05d}", end - timedelta(hours=i)) for i in range(365 * 24)]


def kept(decisions) -> set[datetime]:
    return {d.backup.time for d in decisions if d.keep}


def test_a_year_of_hourly_backups_with_the_spec_policy() -> None:
    now = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)  # a Thursday
    policy = Retention(keep_last=3, keep_hourly=24, keep_daily=7, keep_weekly=4, keep_monthly=12)
    decisions = decide(hourly_year(now), policy)

    def at(y, m, d, h=23):
        return datetime(y, m, d, h, tzinfo=UTC)

    # last 3 and then 24 more hours: 10:00 yesterday .. 12:00 today.
    expected = {now - timedelta(hours=i) for i in range(27)}
    # daily 7: today and yesterday are taken by the rules above; then the 24th back to the 18th.
    expected |= {at(2026, 11, d) for d in (24, 23, 22, 21, 20, 19, 18)}
    # weekly 4: this ISO week and last week are already kept; then weeks 46, 45, 44, 43 (their Sundays).
    expected |= {at(2026, 11, 15), at(2026, 11, 8), at(2026, 11, 1), at(2026, 10, 25)}
    # monthly 12: November is taken; October 2026 back to November 2025 (month ends).
    expected |= {at(2026, 10, 31), at(2026, 9, 30), at(2026, 8, 31), at(2026, 7, 31), at(2026, 6, 30),
                 at(2026, 5, 31), at(2026, 4, 30), at(2026, 3, 31), at(2026, 2, 28), at(2026, 1, 31),
                 at(2025, 12, 31), at(2025, 11, 30)}
    assert kept(decisions) == expected
    assert len(expected) == 50
    by_time = {d.backup.time: d for d in decisions}
    assert by_time[now].reasons == ["last #1"]
    assert by_time[at(2026, 11, 15)].reasons == ["weekly #1"]
    assert by_time[at(2025, 11, 30)].reasons == ["monthly #12"]


def test_oldest_is_kept_when_a_rule_runs_short() -> None:
    now = datetime(2026, 1, 10, tzinfo=UTC)
    backups = [Backup(f"d{i}", now - timedelta(days=i)) for i in range(3)]
    d = decide(backups, Retention(keep_daily=1, keep_monthly=5))
    assert [x.keep for x in d] == [True, False, True]
    assert "oldest" in d[-1].reasons[0]


def test_empty_policy_keeps_everything() -> None:
    now = datetime(2026, 1, 10, tzinfo=UTC)
    backups = [Backup(f"d{i}", now - timedelta(hours=i)) for i in range(50)]
    assert all(x.keep for x in decide(backups, Retention()))


def test_timezone_moves_day_boundaries() -> None:
    # 23:30 UTC and 00:30 UTC are two UTC days but one day in New York.
    a = Backup("a", datetime(2026, 3, 1, 23, 30, tzinfo=UTC))
    b = Backup("b", datetime(2026, 3, 2, 0, 30, tzinfo=UTC))
    c = Backup("c", datetime(2026, 3, 3, 12, 0, tzinfo=UTC))
    utc = {x.backup.id: x.reasons for x in decide([a, b, c], Retention(keep_daily=3))}
    assert utc["a"] == ["daily #3"]  # its own UTC day
    ny = {x.backup.id: x.reasons for x in decide([a, b, c], Retention(keep_daily=3, timezone="America/New_York"))}
    assert ny["a"] == ["daily #3 (oldest)"]  # same New York day as b: kept only as the oldest


times = st.lists(st.integers(0, 3 * 365 * 24 * 60), min_size=1, max_size=60, unique=True)
counts = st.one_of(st.none(), st.integers(0, 6))
policies = st.builds(Retention, keep_last=counts, keep_hourly=counts, keep_daily=counts, keep_weekly=counts,
                     keep_monthly=counts, keep_yearly=counts)
BASE = datetime(2024, 1, 1, tzinfo=UTC)


def to_backups(minutes: list[int]) -> list[Backup]:
    return [Backup(f"id{m:08d}", BASE + timedelta(minutes=m)) for m in minutes]


@settings(max_examples=300, deadline=None)
@given(minutes=times, policy=policies)
def test_never_deletes_the_newest(minutes, policy) -> None:
    d = decide(to_backups(minutes), policy)
    assert d[0].keep and d[0].backup.time == max(b.time for b in to_backups(minutes))


@settings(max_examples=300, deadline=None)
@given(minutes=times, policy=policies, rule=st.sampled_from(["last", "hourly", "daily", "weekly", "monthly",
                                                            "yearly"]))
def test_kept_set_only_grows_when_a_rule_grows(minutes, policy, rule) -> None:
    backups = to_backups(minutes)
    n = getattr(policy, f"keep_{rule}") or 0
    bigger = msgspec.structs.replace(policy, **{f"keep_{rule}": n + 1})
    assert kept(decide(backups, policy)) <= kept(decide(backups, bigger)) or getattr(policy, f"keep_{rule}") is None


@settings(max_examples=300, deadline=None)
@given(minutes=times, policy=policies)
def test_pruning_a_pruned_set_deletes_nothing(minutes, policy) -> None:
    first = decide(to_backups(minutes), policy)
    survivors = [d.backup for d in first if d.keep]
    assert all(d.keep for d in decide(survivors, policy))


def three_hourly_month_with_weekly_fulls(end: datetime) -> list[Backup]:
    """A month of backups every 3 hours, each incremental on the one before, a full every 7 days."""
    times = [end - timedelta(hours=3 * i) for i in range(30 * 8)][::-1]  # oldest first
    out: list[Backup] = []
    chain: list[str] = []
    for i, t in enumerate(times):
        backup_id = f"b{i:04d}"
        if i % (7 * 8) == 0:
            chain = []
        out.append(Backup(backup_id, t, tuple(chain)))
        chain = [*chain, backup_id]
    return out


def test_a_month_of_incrementals_keeps_what_kept_backups_need_and_nothing_else() -> None:
    now = datetime(2026, 11, 30, 21, 0, tzinfo=UTC)
    backups = three_hourly_month_with_weekly_fulls(now)
    policy = Retention(keep_last=8, keep_daily=7, keep_weekly=4)
    decisions = decide(backups, policy)
    keep = {d.backup.id for d in decisions if d.keep}
    by_rules = {d.backup.id for d in decide([Backup(b.id, b.time) for b in backups], policy) if d.keep}
    needed = {c for b in backups if b.id in by_rules for c in b.chain}
    assert keep == by_rules | needed  # what a rule keeps, and every base it needs; nothing else
    assert all(set(b.chain) <= keep for b in backups if b.id in keep)
    assert len(keep) < len(backups)  # the rest goes
    reasons = {d.backup.id: d.reasons for d in decisions}
    only_base = sorted(needed - by_rules)
    assert only_base and all(r[0].startswith("base of ") for r in (reasons[i] for i in only_base))


@settings(max_examples=200, deadline=None)
@given(st.lists(st.booleans(), min_size=1, max_size=60), st.integers(1, 5), st.integers(0, 4))
def test_no_kept_backup_ever_loses_its_chain(fulls, last, daily) -> None:
    now = datetime(2026, 1, 31, tzinfo=UTC)
    backups, chain = [], []
    for i, full in enumerate(fulls):
        if full or not chain:
            chain = []
        backups.append(Backup(f"b{i:03d}", now - timedelta(hours=7 * (len(fulls) - i)), tuple(chain)))
        chain = [*chain, f"b{i:03d}"]
    decisions = decide(backups, Retention(keep_last=last, keep_daily=daily or None))
    keep = {d.backup.id for d in decisions if d.keep}
    assert all(set(b.chain) <= keep for b in backups if b.id in keep)
