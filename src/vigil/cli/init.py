"""`vigil init --laravel DIR`: write a complete job for a Laravel app, then audit it with doctor."""

from __future__ import annotations

import os
import shlex
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import click
import msgspec

from vigil.cli.common import ROOT, state
from vigil.state.journal import Outcome

if TYPE_CHECKING:
    from vigil.config.schema import Job


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
    job = _write_new(target, result.text, load_job_file)
    for note in result.notes:
        print(f"note: {note}")
    if scripts:
        print(f"old backup script(s) named for doctor: {', '.join(scripts)}")
    print(f"wrote {target}\n")
    print("doctor:")
    bad = print_findings(job, root, strict=False, new=True)
    if target.parent != jobs_dir.absolute():
        config = f" --config {shlex.quote(str(target))}"
    elif configured and Path(configured).is_dir():
        config = f" --config {shlex.quote(str(configured))}"
    else:  # the default jobs directory (a --config FILE does not hold the new job)
        config = "" if jobs_dir == Path(JOBS_DIR) and not configured else f" --config {shlex.quote(str(target))}"
    print("\nnext:")
    print(f"  vigil{config} run {job.name}")
    print(f"  vigil{config} schedule install {job.name}")
    return Outcome.FAILED if bad else Outcome.SUCCESS


def _write_new(path: Path, text: str, load: Callable[[Path], Job]) -> Job:
    """Create the job file, once vigil's own loader took it; never replace one (a job's history
    hangs on its file), and never leave one that does not load in a jobs directory, where it
    would stop every other job's commands."""
    import tempfile

    from vigil.errors import ConfigError

    if os.path.lexists(path):
        raise ConfigError(f"--output: {path} already exists; refusing to overwrite it "
                          "(remove it, or give another --output or --name)")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".new")  # 0600, not *.toml
    except OSError as exc:
        raise ConfigError(f"--output: cannot create {path} ({exc.strerror})") from None
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        try:
            job = load(Path(tmp))
        except ConfigError as exc:
            raise ConfigError(f"{path} not written: the app's .env gives a job vigil cannot load: "
                              f"{str(exc).replace(tmp, str(path))}") from None
        os.link(tmp, path)  # fails if the name was taken meanwhile: no overwrite
    except FileExistsError:
        raise ConfigError(f"--output: {path} already exists; refusing to overwrite it") from None
    except OSError as exc:
        raise ConfigError(f"--output: cannot create {path} ({exc.strerror})") from None
    finally:
        os.unlink(tmp)
    return msgspec.structs.replace(job, config_path=path)
