"""`vigil schedule install|show|remove`: the one schedule of each job."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import click

from vigil.cli.common import JOB, ROOT, one_job, state
from vigil.state.journal import Outcome


@click.group(no_args_is_help=True)
def schedule() -> None:
    """Write, show or remove the one schedule of a job."""


@schedule.command("install")
@JOB
@click.option("--systemd/--cron", default=True, help="systemd timer (default) or /etc/cron.d")
@ROOT
@click.pass_context
def schedule_install(ctx: click.Context, job: str | None, systemd: bool, root: Path) -> str:
    """Schedule a job exactly once (refuses if it is scheduled anywhere already)."""
    from vigil.actions.schedule import install

    # Absolute, as typed (not symlink-resolved): cron and systemd start elsewhere than here.
    config = os.path.abspath(state(ctx).config or os.environ.get("VIGIL_CONFIG") or "/etc/vigil/jobs/")
    failed = False
    for j in one_job(ctx, job):
        done = install(j, root, systemd, config)
        if done.existing:
            print(f"vigil: {j.name}: already scheduled; not installing another schedule:", file=sys.stderr)
            for e in done.existing:
                print(f"  {e.describe()}", file=sys.stderr)
            failed = True
            continue
        for path in done.written:
            print(f"wrote {path}")
        if done.timers:
            print(f"enable it with: systemctl daemon-reload && systemctl enable --now {' '.join(done.timers)}")
    return Outcome.FAILED if failed else Outcome.SUCCESS


@schedule.command("show")
@JOB
@ROOT
@click.pass_context
def schedule_show(ctx: click.Context, job: str | None, root: Path) -> None:
    """Every schedule that runs the job, and where it is."""
    from vigil.actions.schedule import audit, audit_verify

    for j in one_job(ctx, job):
        entries = audit(j, root)
        print(f"{j.name}: {'not scheduled' if not entries else f'{len(entries)} schedule(s)'}")
        for e in entries:
            print(f"  {e.describe()}")
        verifies = audit_verify(j, root)
        if verifies or j.schedule.verify_every:
            print(f"{j.name} verify: {'not scheduled' if not verifies else f'{len(verifies)} schedule(s)'}")
        for e in verifies:
            print(f"  {e.describe()}")


@schedule.command("remove")
@JOB
@ROOT
@click.pass_context
def schedule_remove(ctx: click.Context, job: str | None, root: Path) -> None:
    """Remove what `schedule install` wrote (and nothing else)."""
    from vigil.actions.schedule import remove

    for j in one_job(ctx, job):
        files = remove(j, root)
        if not files:
            print(f"{j.name}: nothing installed by vigil")
        for f in files:
            print(f"removed {f}")
