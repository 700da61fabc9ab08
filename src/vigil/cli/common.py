"""What every command shares: the state the global flags set, the job selection, shared arguments."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click

from vigil.config.load import load_config, select_jobs
from vigil.config.schema import Job
from vigil.errors import ConfigError, VigilError

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


def _admin_options(f: Any) -> Any:
    for option in reversed([
        click.option("--db-host", help="Database server for creating and loading databases [default: the "
                                       "[restore] table's, else the source's]"),
        click.option("--db-port", type=click.IntRange(1, 65535), help="Its port"),
        click.option("--db-socket", type=click.Path(path_type=Path), help="Its Unix socket (MySQL/MariaDB)"),
        click.option("--db-user", help="An account that may create databases (the app's own often may not)"),
        click.option("--db-password-env", metavar="VAR",
                     help="Environment variable (or env_file key) holding that account's password"),
    ]):
        f = option(f)
    return f


# restore and verify --restore-test: the connection that creates databases
ADMIN_CONNECTION = _admin_options


def with_admin(job: Job, flags: dict[str, Any]) -> Job:
    """The job with --db-* flags laid over its [restore] table."""
    import msgspec

    from vigil.config.schema import AdminConnection
    from vigil.config.secrets import EnvVar, read_env_file

    given = {k.removeprefix("db_"): v for k, v in flags.items() if k.startswith("db_") and v is not None}
    if not given:
        return job
    if "password_env" in given:
        try:
            dotenv = read_env_file(job.env_file) if job.env_file else {}
            given["password_env"] = EnvVar.of(given["password_env"], dotenv, job.env_file)
        except (ValueError, msgspec.ValidationError) as exc:
            raise ConfigError(f"--db-password-env: {exc}") from None
    base = job.restore or AdminConnection()
    if "socket" in given:
        base = msgspec.structs.replace(base, port=None)
    elif "port" in given:
        base = msgspec.structs.replace(base, socket=None)
    if "user" in given and "password_env" not in given:
        base = msgspec.structs.replace(base, password_env=None, password_file=None)
    if "password_env" in given:
        base = msgspec.structs.replace(base, password_file=None)
    return msgspec.structs.replace(job, restore=msgspec.structs.replace(base, **given))
