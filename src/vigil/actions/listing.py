"""`vigil list`: the complete and damaged backups of jobs across their destinations, newest first."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from vigil.config.schema import Job
from vigil.destinations.base import make_destination
from vigil.errors import VigilError


@dataclass
class Listing:
    rows: list[dict[str, Any]] = field(default_factory=list)  # the shape `list --json` prints
    unreachable: list[str] = field(default_factory=list)  # "job: why", one per destination left out


def list_backups(jobs: list[Job]) -> Listing:
    out = Listing()
    for j in jobs:
        for dcfg in j.destination:
            try:
                scan = make_destination(dcfg).scan(j.name)
            except VigilError as exc:
                # What the others hold is still listed; `vigil health` is what turns an
                # unreachable destination into an alert.
                out.unreachable.append(f"{j.name}: {exc}")
                continue
            for m in scan.complete:
                out.rows.append({
                    "id": m.id, "job": j.name, "destination": dcfg.name, "started_at": m.started_at,
                    "finished_at": m.finished_at, "size": m.size, "artifacts": [a.name for a in m.artifacts],
                    "warnings": m.warnings, "status": "complete", "reason": None, "kind": m.kind,
                    "base": m.base, "state_bytes": m.state_size,
                })
            for bad in scan.damaged:  # nothing of its manifest is shown: none of it checked out
                out.rows.append({
                    "id": bad.backup_id, "job": j.name, "destination": dcfg.name, "started_at": None,
                    "finished_at": None, "size": None, "artifacts": [], "warnings": [], "status": "damaged",
                    "reason": bad.reason, "kind": None, "base": None, "state_bytes": None,
                })
    # A backup id starts with its UTC start time: the order for damaged backups too.
    out.rows.sort(key=lambda r: (r["id"][:16], r["started_at"] or "", r["id"]), reverse=True)
    return out
