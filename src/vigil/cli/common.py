"""What every command shares: the state the global flags set, the job selection, shared arguments."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import click

from vigil.config.load import load_config, select_jobs
from vigil.config.schema import Job
from vigil.errors import VigilError

log = logging.getLogger("vigil")


@dataclass
class State:
    config: str | None = None
    progress: bool = False  # bars on stderr: a terminal, text logs, not --quiet

    def jobs(self, names: list[str] | None = None, flush: bool = True) -> list[Job]:
        jobs = select_jobs(load_config(self.config), names)
        if flush:
            # Every command retries what earlier ones could not deliver.
            from vigil.notify import flush as flush_outbox

            try:
                flush_outbox(jobs, log, attempts=1)
            except VigilError as exc:
                log.warning("cannot deliver queued notifications: %s", exc)
        return jobs


def state(ctx: click.Context) -> State:
    obj: State = ctx.obj
    return obj


def one_job(ctx: click.Context, job: str | None) -> list[Job]:
    """The named job, or every job."""
    return state(ctx).jobs([job] if job else None)


# Arguments and options several commands share.
JOBS = click.argument("jobs", nargs=-1, metavar="[JOB]...")
JOB = click.argument("job", required=False)
JSON = click.option("--json", "as_json", is_flag=True, help="Machine-readable output")
ROOT = click.option("--root", type=click.Path(path_type=Path), default=Path("/"), show_default=True,
                    help="Operate on (or read schedules from) this tree instead of /")
