"""`vigil notify flush|test`: deliver queued notifications, or test every channel."""

from __future__ import annotations

import click

from vigil.cli.common import JOB, JOBS, log, one_job, state
from vigil.config.schema import Job
from vigil.state.journal import Outcome


@click.group(no_args_is_help=True)
def notify() -> None:
    """Deliver queued notifications, or test every channel."""


@notify.command("flush")
@JOBS
@click.pass_context
def notify_flush(ctx: click.Context, jobs: tuple[str, ...]) -> str:
    """Deliver every queued notification (default: every job's); exit 1 if any still fails."""
    from vigil.notify import flush

    delivered, failed = flush(state(ctx).jobs(list(jobs), flush=False), log)
    print(f"delivered {delivered}, still queued {failed}")
    return Outcome.FAILED if failed else Outcome.SUCCESS


@notify.command("test")
@JOB
@click.pass_context
def notify_test(ctx: click.Context, job: str | None) -> str:
    """Send a test message on every channel (default: every job's) and report each result."""
    return Outcome.FAILED if send_tests(one_job(ctx, job)) else Outcome.SUCCESS


def send_tests(jobs: list[Job]) -> int:
    """A test message on every channel of the jobs; the number that failed."""
    import socket

    from vigil.notify import channels, deliver
    from vigil.notify.message import test_message

    failed = 0
    for j in jobs:
        if not j.notify:
            print(f"{j.name}: no notification channels configured")
            continue
        msg = test_message(j.name, socket.gethostname())
        for cfg, err in zip(j.notify, deliver([(c, msg) for c in j.notify], log, attempts=1), strict=False):
            print(f"{j.name}: {channels.describe(cfg)}: {'OK' if err is None else f'FAILED: {err}'}")
            failed += err is not None
    return failed
