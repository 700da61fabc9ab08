"""`vigil list`: the complete (and damaged) backups on every destination, newest first."""

from __future__ import annotations

import sys
from typing import Any

import click

from vigil.cli.common import JOB, JSON, one_job
from vigil.cli.render import human_size, print_json, table
from vigil.errors import VigilError


@click.command("list")
@JOB
@JSON
@click.pass_context
def list_(ctx: click.Context, job: str | None, as_json: bool) -> None:
    """Complete backups per destination, newest first (default: every job)."""
    from vigil.destinations.base import make_destination

    rows: list[dict[str, Any]] = []
    for j in one_job(ctx, job):
        for dcfg in j.destination:
            try:
                scan = make_destination(dcfg).scan(j.name)
            except VigilError as exc:
                # Show what the others hold, and say which destination is missing from
                # the list. The exit code stays 0 (SPEC §1: list exits 0 or 2);
                # `vigil health` is what turns an unreachable destination into an alert.
                print(f"vigil: {j.name}: {exc}", file=sys.stderr)
                continue
            for m in scan.complete:
                rows.append({
                    "id": m.id, "job": j.name, "destination": dcfg.name, "started_at": m.started_at,
                    "finished_at": m.finished_at, "size": m.size, "artifacts": [a.name for a in m.artifacts],
                    "warnings": m.warnings, "status": "complete", "reason": None,
                })
            for bad in scan.damaged:  # nothing of its manifest is shown: none of it checked out
                rows.append({
                    "id": bad.backup_id, "job": j.name, "destination": dcfg.name, "started_at": None,
                    "finished_at": None, "size": None, "artifacts": [], "warnings": [], "status": "damaged",
                    "reason": bad.reason,
                })
    # A backup id starts with its UTC start time: the order for damaged backups too.
    rows.sort(key=lambda r: (r["id"][:16], r["started_at"] or "", r["id"]), reverse=True)
    if as_json:
        print_json(rows)
    elif not rows:
        print("no complete backups")
    else:
        _print_list(rows)


def _print_list(rows: list[dict[str, Any]]) -> None:
    print(table(
        [[r["job"], r["destination"], r["id"], r["started_at"] or "-",
          human_size(r["size"]) if r["size"] is not None else "-", r["status"],
          str(len(r["warnings"])) if r["warnings"] else "-"] for r in rows],
        ["JOB", "DESTINATION", "ID", "STARTED", "SIZE", "STATUS", "WARNINGS"],
    ))
    for r in rows:
        if r["reason"]:
            print(f"{r['job']} on {r['destination']}: backup {r['id']} is damaged: {r['reason']}")
