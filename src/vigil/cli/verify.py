"""`vigil verify`: check stored backups, print each check, end failed if any is damaged."""

from __future__ import annotations

import click

from vigil.cli.common import ADMIN_CONNECTION, JOB, log, state, with_admin
from vigil.pipeline.progress import meter
from vigil.state.journal import Outcome


@click.command()
@JOB
@click.argument("backup_id", metavar="[BACKUP_ID|latest]", default="latest")
@click.option("--deep", is_flag=True, help="Decompress and check every file and dump")
@click.option("--restore-test", is_flag=True, help="Load database dumps into scratch databases")
@click.option("--all", "every", is_flag=True, help="Every backup of the job, not one")
@ADMIN_CONNECTION
@click.pass_context
def verify(ctx: click.Context, /, job: str | None, backup_id: str, deep: bool, restore_test: bool, every: bool,
           **db: str | None) -> str:
    """Check stored backups (default: every job's latest): present, intact, readable, restorable."""
    from vigil.actions.verify import backup_ids, targets, verify_and_record

    problems = backups = 0
    selected, backup_id = targets(state(ctx).jobs(), job, backup_id)
    for j in [with_admin(s, db) for s in selected]:
        for one in backup_ids(j, backup_id, every):
            with meter(state(ctx).progress) as m:
                report = verify_and_record(j, one, deep, restore_test, log, m)
            for line in report.checked:
                print(f"OK       {line}")
            for line in report.problems:
                print(f"DAMAGED  {line}")
            for line in report.failed:
                print(f"FAILED   {line}")
            problems += len(report.problems) + len(report.failed)
            backups += 1
    if every:
        print(f"{backups} backup(s) checked, {problems} problem(s) found")
    else:
        print("backup intact" if not problems else f"{problems} problem(s) found")
    return Outcome.FAILED if problems else Outcome.SUCCESS
