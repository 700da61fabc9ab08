"""`vigil init --laravel DIR`: write a complete job for a Laravel app, then audit it with doctor."""

from __future__ import annotations

import os
import shlex
from pathlib import Path

import click

from vigil.cli.common import ROOT, state
from vigil.state.journal import Outcome


@click.command()
@click.option("--laravel", "app", required=True, type=click.Path(path_type=Path), metavar="DIR",
              help="The Laravel app's directory (holds artisan and .env)")
@click.option("--name", help="Job name [default: APP_NAME slugged, else the directory's name]")
@click.option("--notify-email", metavar="ADDR", help="Mail failures here, through the app's MAIL_* settings")
@click.option("--output", type=click.Path(path_type=Path), metavar="FILE",
              help="Job file to write (never overwritten) [default: NAME.toml in the --config directory, "
                   "else in /etc/vigil/jobs/]")
@click.option("--backup-dir", default="/var/backups/vigil", show_default=True, metavar="DIR",
              help="The local destination")
@click.option("--state-dir", metavar="DIR", help="The job's state_dir [default: /var/lib/vigil]")
@click.option("--legacy-script", "legacy", multiple=True, metavar="PATH",
              help="The old backup script this job replaces, so doctor finds its schedules; repeatable "
                   "[default: *backup*.sh found in the app, scripts/, bin/ or deploy/]")
@ROOT
@click.pass_context
def init(ctx: click.Context, /, app: Path, name: str | None, notify_email: str | None, output: Path | None,
         backup_dir: str, state_dir: str | None, legacy: tuple[str, ...], root: Path) -> str:
    """Write a job for a Laravel app from its .env (no secret copied), then run doctor on it."""
    from vigil.actions.init import JOBS_DIR, find_legacy_scripts, is_laravel_app, laravel_job
    from vigil.cli.doctor import print_findings
    from vigil.config.load import load_job_file
    from vigil.config.schema import check_address, check_name
    from vigil.config.secrets import env_for_init
    from vigil.errors import ConfigError

    app = Path(os.path.abspath(app))
    why = is_laravel_app(app)
    if why:
        raise ConfigError(f"--laravel: {why}")
    try:
        if name is not None:
            check_name(name)
        if notify_email is not None:
            check_address("to", notify_email)
    except ValueError as exc:  # "KEY: what is wrong", said of the flag
        flag = "--name" if str(exc).startswith("name") else "--notify-email"
        raise ConfigError(f"{flag}: {str(exc).split(': ', 1)[1]}") from None
    env = env_for_init(app / ".env")
    scripts = [os.path.abspath(p) for p in legacy] or find_legacy_scripts(app)
    result = laravel_job(app, env, name=name, notify_email=notify_email, backup_dir=backup_dir,
                         state_dir=os.path.abspath(state_dir) if state_dir else None, legacy=scripts)
    # The jobs directory the other commands read: --config or $VIGIL_CONFIG when it is one.
    configured = state(ctx).config or os.environ.get("VIGIL_CONFIG")
    jobs_dir = Path(configured) if configured and Path(configured).is_dir() else Path(JOBS_DIR)
    target = Path(os.path.abspath(output or jobs_dir / f"{result.name}.toml"))
    _write_new(target, result.text)
    for note in result.notes:
        print(f"note: {note}")
    if scripts:
        print(f"old backup script(s) named for doctor: {', '.join(scripts)}")
    print(f"wrote {target}\n")
    job = load_job_file(target)  # what init writes, vigil's own loader must take
    print("doctor:")
    bad = print_findings(job, root, strict=False, new=True)
    if target.parent == jobs_dir.absolute():  # where the other commands look already, or are told to
        config = f" --config {shlex.quote(str(configured))}" if configured else ""
    else:
        config = f" --config {shlex.quote(str(target))}"
    print("\nnext:")
    print(f"  vigil{config} run {job.name}")
    print(f"  vigil{config} schedule install {job.name}")
    return Outcome.FAILED if bad else Outcome.SUCCESS


def _write_new(path: Path, text: str) -> None:
    """Create the job file; never replace one (a job's history hangs on its file)."""
    from vigil.errors import ConfigError

    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise ConfigError(f"--output: {path} already exists; refusing to overwrite it "
                          "(remove it, or give another --output or --name)") from None
    except OSError as exc:
        raise ConfigError(f"--output: cannot create {path} ({exc.strerror})") from None
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(text)
