"""`vigil list`: the complete (and damaged) backups on every destination, newest first."""

from __future__ import annotations

import sys
from typing import Any

import click

from vigil.cli.common import JOB, JSON, one_job
from vigil.cli.render import print_json, table
from vigil.sizes import human_size


@click.command("list")
@JOB
@JSON
@click.pass_context
def list_(ctx: click.Context, job: str | None, as_json: bool) -> None:
    """Complete backups per destination, newest first (default: every job)."""
    from vigil.actions.listing import list_backups

    listing = list_backups(one_job(ctx, job))
    for line in listing.unreachable:
        # The exit code stays 0 (SPEC §1: list exits 0 or 2).
        print(f"vigil: {line}", file=sys.stderr)
    rows = listing.rows
    if as_json:
        print_json(rows)
    elif not rows:
        print("no complete backups")
    else:
        _print_list(rows)


def _print_list(rows: list[dict[str, Any]]) -> None:
    print(table(
        [[r["job"], r["destination"], r["id"], r["started_at"] or "-",
          human_size(r["size"]), r["kind"] or "-", r["base"] or "-", r["status"],
          str(len(r["warnings"])) if r["warnings"] else "-"] for r in rows],
        ["JOB", "DESTINATION", "ID", "STARTED", "SIZE", "KIND", "BASE", "STATUS", "WARNINGS"],
    ))
    for r in rows:
        if r["reason"]:
            print(f"{r['job']} on {r['destination']}: backup {r['id']} is damaged: {r['reason']}")
