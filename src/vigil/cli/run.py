"""`vigil run`: back up each job, report each outcome, end with the worst."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

import click

from vigil.cli.common import JOBS, log, state
from vigil.pipeline.progress import meter
from vigil.state.journal import Outcome

if TYPE_CHECKING:
    from vigil.actions.backup import RunResult

# With several jobs the worst outcome is the command's.
SEVERITY = {Outcome.SUCCESS: 0, Outcome.SKIPPED: 1, Outcome.FAILED: 2, Outcome.INTERRUPTED: 2, Outcome.DIED: 2}


@click.command()
@JOBS
@click.option("--full", is_flag=True, help="Store every file, not only what changed since the last backup.")
@click.pass_context
def run(ctx: click.Context, jobs: tuple[str, ...], full: bool) -> str:
    """Run a backup of each job (default: all): lock, hooks, sources, destinations, verify, retention, notify."""
    from vigil.actions.backup import Run  # only here: the other commands start without the run machinery
    from vigil.notify import RunNotifier

    selected = state(ctx).jobs(list(jobs))
    notifier = RunNotifier(log)
    results: list[RunResult] = []
    for job in selected:
        with meter(state(ctx).progress) as m:
            result = Run(job, log=log, notifier=notifier, meter=m, full=full).execute()
        results.append(result)
        _report(result)
        if result.outcome == Outcome.INTERRUPTED:
            break  # a signal stops the whole command, not just this job
    worst = max(results, key=lambda r: SEVERITY[r.outcome])
    return worst.outcome


def _report(result: RunResult) -> None:
    if result.outcome == Outcome.SUCCESS:
        warn = f" with {len(result.warnings)} warning(s)" if result.warnings else ""
        log.info("%s: backup %s complete%s", result.job, result.backup_id, warn)
    elif result.outcome == Outcome.SKIPPED:
        print(f"vigil: {result.job}: skipped: {result.error}", file=sys.stderr)
    else:
        print(f"vigil: {result.job}: {result.outcome} at step {result.step}: {result.error}", file=sys.stderr)
