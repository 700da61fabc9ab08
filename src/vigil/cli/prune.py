"""`vigil prune`: apply each job's retention policy and show every decision."""

from __future__ import annotations

import sys

import click

from vigil.cli.common import JOB, log, one_job
from vigil.cli.render import table
from vigil.errors import VigilError
from vigil.state.journal import Outcome
from vigil.timeutil import iso


@click.command()
@JOB
@click.option("--dry-run", is_flag=True, help="Show every decision, delete nothing")
@click.pass_context
def prune(ctx: click.Context, job: str | None, dry_run: bool) -> str:
    """Apply the retention policy (default: every job): delete backups no rule keeps."""
    from vigil.actions.prune import prune_requested

    failed = False
    for j in one_job(ctx, job):
        try:
            outcomes = prune_requested(j, dry_run, log)
        except VigilError as exc:
            print(f"vigil: {j.name}: {exc}", file=sys.stderr)
            failed = True
            continue
        for o in outcomes:
            rows = [[d.backup.id, iso(d.backup.time) or "", "keep" if d.keep else
                     ("would delete" if dry_run else "deleted"), ", ".join(d.reasons) or "-"] for d in o.decisions]
            print(f"{j.name} on {o.destination}:")
            print(table(rows, ["ID", "STARTED", "DECISION", "KEPT BY"]) if rows else "  no backups")
            for p in o.partials_removed:
                print(f"  unfinished backup {p}: {'would remove' if dry_run else 'removed'}")
            for bad in o.damaged:
                print(f"  damaged backup {bad.backup_id}: left in place ({bad.reason})")
    return Outcome.FAILED if failed else Outcome.SUCCESS

