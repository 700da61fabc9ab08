"""Which backups to keep: pure, with the semantics of `borg prune`.

Rules run in the order last, hourly, daily, weekly, monthly, yearly. Each
walks the backups newest first and keeps the newest backup of each period
(UTC unless `retention.timezone` says otherwise) until it has kept N; a
backup already kept by an earlier rule uses up its period but does not count
towards N. If a rule runs out of backups before N, it also keeps the oldest
one (as borg does), so that the history reaches back as far as it can. The
newest backup is always kept; an empty policy keeps everything. Then every
backup in the chain of a kept incremental backup is kept too ("base of ID"),
so that no kept backup loses what it is restored from (SPEC §11).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from zoneinfo import ZoneInfo

from vigil.config.schema import Retention

RULES: list[tuple[str, Callable[[datetime], str]]] = [
    ("last", lambda t: t.isoformat()),  # every backup is its own period
    ("hourly", lambda t: t.strftime("%Y-%m-%d %H")),
    ("daily", lambda t: t.strftime("%Y-%m-%d")),
    ("weekly", lambda t: "{}-W{:02d}".format(*t.isocalendar()[:2])),
    ("monthly", lambda t: t.strftime("%Y-%m")),
    ("yearly", lambda t: t.strftime("%Y")),
]


@dataclass(frozen=True)
class Backup:
    id: str
    time: datetime  # timezone-aware
    chain: tuple[str, ...] = ()  # an incremental backup's: its full first, its base last


@dataclass
class Decision:
    backup: Backup
    keep: bool
    reasons: list[str] = field(default_factory=list)


def is_empty(policy: Retention) -> bool:
    return all(getattr(policy, f"keep_{rule}") is None for rule, _ in RULES)


def decide(backups: list[Backup], policy: Retention) -> list[Decision]:
    """Keep or delete, with the rule(s) that kept each; newest first."""
    zone = ZoneInfo(policy.timezone)
    ordered = sorted(backups, key=lambda b: (b.time, b.id), reverse=True)
    reasons: dict[str, list[str]] = {b.id: [] for b in ordered}
    if is_empty(policy):
        for b in ordered:
            reasons[b.id].append("no retention policy")
    kept_by_rule: set[str] = set()
    for rule, period_of in RULES:
        n = getattr(policy, f"keep_{rule}")
        if not n:
            continue
        last_period = None
        count = 0
        oldest = None
        for b in ordered:
            oldest = b
            period = period_of(b.time.astimezone(zone))
            if period == last_period:
                continue
            last_period = period
            if b.id in kept_by_rule:
                continue
            kept_by_rule.add(b.id)
            count += 1
            reasons[b.id].append(f"{rule} #{count}")
            if count == n:
                break
        if count < n and oldest is not None and oldest.id not in kept_by_rule:
            kept_by_rule.add(oldest.id)
            reasons[oldest.id].append(f"{rule} #{count + 1} (oldest)")
    if ordered and not reasons[ordered[0].id]:
        reasons[ordered[0].id].append("newest")
    for b in ordered:  # newest first: a base kept only for a newer backup still keeps its own chain
        if reasons[b.id]:
            for base in b.chain:
                if base in reasons and not any(r.startswith("base of") for r in reasons[base]):
                    reasons[base].append(f"base of {b.id}")
    return [Decision(b, bool(reasons[b.id]), reasons[b.id]) for b in ordered]
