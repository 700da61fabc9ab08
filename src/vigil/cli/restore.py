"""`vigil restore`: one source of a backup into a directory, a database or a file."""

from __future__ import annotations

from pathlib import Path

import click

from vigil.cli.common import ADMIN_CONNECTION, log, state, with_admin
from vigil.cli.render import print_json
from vigil.pipeline.progress import meter
from vigil.sizes import human_size


@click.command()
@click.argument("job")
@click.argument("backup_id", metavar="BACKUP_ID|latest")
@click.option("--source", required=True, help="The source to restore")
@click.option("--to", type=click.Path(path_type=Path), help="Directory for a files source")
@click.option("--to-database", help="New database")
@click.option("--to-file", type=click.Path(path_type=Path), help="Write the plain dump/database here")
@click.option("--include", multiple=True, help="Only paths matching (gitignore-style); repeatable")
@click.option("--force", is_flag=True, help="Restore into a non-empty target")
@click.option("--destination", metavar="NAME",
              help="Only from this destination [default: the first whose copy checks out, then the next]")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable summary")
@ADMIN_CONNECTION
@click.pass_context
def restore(ctx: click.Context, /, job: str, backup_id: str, source: str, to: Path | None, to_database: str | None,
            to_file: Path | None, include: tuple[str, ...], force: bool, destination: str | None,
            as_json: bool, **db: str | None) -> None:
    """Restore one source of a backup into a directory, a database or a file."""
    from vigil.actions.restore import restore as do_restore

    [j] = state(ctx).jobs([job])
    j = with_admin(j, db)
    with meter(state(ctx).progress) as m:
        summary = do_restore(j, backup_id, source, to_dir=to, to_database=to_database, to_file=to_file,
                             include=list(include), force=force, log=log, meter=m, destination=destination)
    if as_json:
        print_json(summary.to_json())
    else:
        print(f"restored source {summary.source} of backup {summary.backup_id} from {summary.destination} "
              f"to {summary.target}: {summary.entries} entries, {human_size(summary.bytes)} "
              f"in {summary.seconds:.1f}s")
        for line in summary.skipped:
            print(f"  skipped: {line}")
