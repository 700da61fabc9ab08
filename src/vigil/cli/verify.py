"""`vigil verify`: check stored backups, print each check, end failed if any is damaged."""

from __future__ import annotations

import click

from vigil.cli.common import JOB, log, state
from vigil.config.schema import select_jobs
from vigil.pipeline.progress import meter
from vigil.state.journal import FAILED, SUCCESS


@click.command()
@JOB
@click.argument("backup_id", metavar="[BACKUP_ID|latest]", default="latest")
@click.option("--deep", is_flag=True, help="Decompress and check every file and dump")
@click.option("--restore-test", is_flag=True, help="Load database dumps into scratch databases")
@click.option("--all", "every", is_flag=True, help="Every backup of the job, not one")
@click.pass_context
def verify(ctx: click.Context, job: str | None, backup_id: str, deep: bool, restore_test: bool, every: bool) -> str:
    """Check stored backups (default: every job's latest): present, intact, readable, restorable."""
    from vigil.destinations.base import make_destination
    from vigil.actions.monitor import record_verify
    from vigil.actions.verify import Verifier

    from vigil.formats.manifest import is_backup_id

    problems = backups = 0
    jobs = state(ctx).jobs()
    if job is not None and backup_id == "latest" and job not in {j.name for j in jobs} and (
            job == "latest" or (is_backup_id(job) and len(jobs) == 1)):
        job, backup_id = None, job  # `vigil verify latest`, or an id with one job configured
    for j in select_jobs(jobs, [job] if job else None):
        ids = [backup_id]
        if every:
            scans = [make_destination(d).scan(j.name) for d in j.destination]
            ids = sorted({m.id for s in scans for m in s.complete} | {d.backup_id for s in scans for d in s.damaged},
                         reverse=True)
        for one in ids:
            with meter(state(ctx).progress) as m:
                report = Verifier(j, log, m).verify(one, deep, restore_test)
            record_verify(j, report.copies, log)
            for line in report.checked:
                print(f"OK       {line}")
            for line in report.problems:
                print(f"DAMAGED  {line}")
            problems += len(report.problems)
            backups += 1
    if every:
        print(f"{backups} backup(s) checked, {problems} problem(s) found")
    else:
        print("backup intact" if not problems else f"{problems} problem(s) found")
    return FAILED if problems else SUCCESS
