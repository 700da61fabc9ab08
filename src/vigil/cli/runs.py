"""`vigil runs`: the run journal, newest first."""

from __future__ import annotations

import click

from vigil.cli.common import JOB, JSON, one_job
from vigil.cli.render import print_json, table
from vigil.config.schema import Job
from vigil.state.journal import Journal, RunRow
from vigil.timeutil import format_duration, iso


def journals(jobs: list[Job]) -> dict[str, Journal]:
    """One journal per distinct state dir (jobs may share one)."""
    out: dict[str, Journal] = {}
    for j in jobs:
        key = str(j.state_dir)
        if key not in out and (journal := Journal.open_existing(j.state_dir)) is not None:
            out[key] = journal
    return out


@click.command()
@JOB
@JSON
@click.option("--limit", "-n", type=click.IntRange(min=0), default=0, help="Show at most N attempts (0: all)")
@click.pass_context
def runs(ctx: click.Context, job: str | None, as_json: bool, limit: int) -> None:
    """The run journal: every attempt, its outcome and who started it."""
    selected = one_job(ctx, job)
    names = {j.name for j in selected}
    rows: list[RunRow] = []
    for journal in journals(selected).values():
        rows.extend(r for r in journal.runs(job) if r.job in names)
        journal.close()
    rows.sort(key=lambda r: r.started_at, reverse=True)
    if limit:
        rows = rows[:limit]
    if as_json:
        print_json([r.to_json() for r in rows])
        return
    if not rows:
        print("no runs recorded")
        return
    lines = []
    for r in rows:
        took = format_duration(r.finished_at - r.started_at) if r.finished_at else "-"
        detail = r.error or (f"{len(r.warnings)} warning(s): {r.warnings[0]}" if r.warnings else "")
        lines.append([r.run_id, r.job, r.outcome, r.step or "-", iso(r.started_at) or "", took,
                      (r.started_by or "?")[:40], detail])
    print(table(lines, ["RUN", "JOB", "OUTCOME", "STEP", "STARTED", "TOOK", "STARTED BY", "DETAIL"]))
