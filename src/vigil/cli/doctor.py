"""`vigil doctor`: audit each job's config, secrets, tools, destinations, notifications and schedules."""

from __future__ import annotations

from pathlib import Path

import click

from vigil.cli.common import JOB, ROOT, one_job
from vigil.cli.notify import send_tests
from vigil.config.schema import Job
from vigil.state.journal import Outcome


@click.command()
@JOB
@ROOT
@click.option("--strict", is_flag=True, help="Warnings count as problems")
@click.option("--test-notify", is_flag=True, help="Also send a test message on every channel")
@click.pass_context
def doctor(ctx: click.Context, job: str | None, root: Path, strict: bool, test_notify: bool) -> str:
    """Audit config, secrets, permissions, tools, destinations, notifications and schedules."""
    bad = 0
    jobs = one_job(ctx, job)
    for j in jobs:
        bad += print_findings(j, root, strict)
    if test_notify:
        bad += send_tests(jobs)
    return Outcome.FAILED if bad else Outcome.SUCCESS


def print_findings(job: Job, root: Path, strict: bool, new: bool = False) -> int:
    """Print doctor's findings about one job; the number of problems (warnings too if strict).
    `new`: a job just written, that cannot have a backup yet."""
    from vigil.actions.doctor import diagnose
    from vigil.sources.base import OK, PROBLEM, WARNING

    bad = 0
    print(f"{job.name}:")
    for f in diagnose(job, root, new):
        fix = f"\n           fix: {f.fix}" if f.fix and f.level != OK else ""
        print(f"  {f.level:<8} {f.check}: {f.message}{fix}")
        bad += f.level == PROBLEM or (strict and f.level == WARNING)
    return bad
