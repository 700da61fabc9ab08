"""The `vigil` group: global flags, the commands, and the one table from outcomes to exit codes.

Nothing else in vigil exits the process: each command returns its outcome,
and every error that reaches main() becomes one line on stderr and the exit
code of SPEC §1.
"""

from __future__ import annotations

import logging
import os
import sys
from typing import Any

# click, not typer: typer (0.2x) builds a pydantic validator for every parameter,
# and importing pydantic for that cost every command ~0.07 s of its start-up.
import click

from vigil import __version__
from vigil.cli import doctor, fleet, health, init, notify, prune, report, restore, run, runs, schedule, verify
from vigil.cli import list as list_command
from vigil.cli.common import State, log
from vigil.errors import ConfigError, Interrupted, VigilError
from vigil.logs import setup_logging
from vigil.state.journal import Outcome

USAGE = "usage"  # bad arguments or configuration: the outcome of no command
EXIT_CODES: dict[str, int] = {
    # `vigil run` ends with its worst job's outcome; the other commands with success or failed.
    Outcome.SUCCESS: 0, Outcome.SKIPPED: 75, Outcome.FAILED: 1, Outcome.INTERRUPTED: 1, Outcome.DIED: 1,
    USAGE: 2,
    # `vigil health` ends with its worst status, as a Nagios plugin does (actions/health.py's
    # statuses, spelt out: importing that module would cost every command start-up time).
    "OK": 0, "WARNING": 1, "CRITICAL": 2, "UNKNOWN": 3,
}


def _version(ctx: click.Context, _param: click.Parameter, value: bool) -> None:
    if value:
        print(f"vigil {__version__}")
        ctx.exit(0)


@click.group(no_args_is_help=True, help="vigil: backups for web-application servers that are never silent.")
@click.option("--config", "-c", metavar="PATH",
              help="Job file or directory of *.toml job files [default: $VIGIL_CONFIG or /etc/vigil/jobs/]")
@click.option("--log-format", type=click.Choice(["text", "json"]), default="text", show_default=True,
              help="Log format on stderr")
@click.option("--verbose", "-v", is_flag=True, help="Debug logging")
@click.option("--quiet", "-q", is_flag=True, help="Warnings and errors only")
@click.option("--version", is_flag=True, expose_value=False, is_eager=True, callback=_version,
              help="Print the version and exit")
@click.pass_context
def app(ctx: click.Context, config: str | None, log_format: str, verbose: bool, quiet: bool) -> None:
    setup_logging(log_format, logging.DEBUG if verbose else logging.WARNING if quiet else logging.INFO)
    ctx.obj = State(config=config, progress=sys.stderr.isatty() and log_format == "text" and not quiet)


for _command in (run.run, list_command.list_, runs.runs, health.health, verify.verify, restore.restore,
                 prune.prune, doctor.doctor, schedule.schedule, notify.notify, init.init, report.report,
                 fleet.fleet):
    app.add_command(_command)


class _Output:
    """stdout that drops what is left once its reader has gone (`vigil list | head -1`):
    the command still finishes and exits with its own code (click would make
    every such exit 1, a damaged verify and an intact list alike)."""

    def __init__(self, stream: Any) -> None:
        self._stream = stream
        self._gone = False

    def _unless_gone(self, method: str, *args: Any) -> None:
        if not self._gone:
            try:
                getattr(self._stream, method)(*args)
            except BrokenPipeError:
                self._gone = True

    def write(self, text: str) -> int:
        self._unless_gone("write", text)
        return len(text)

    def flush(self) -> None:
        self._unless_gone("flush")

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


def main(argv: list[str] | None = None) -> None:
    from vigil.children import set_original_umask

    set_original_umask(os.umask(0o077))  # backups and state: 0600 / 0700
    sys.stdout = _Output(sys.stdout)
    args = sys.argv[1:] if argv is None else argv
    _exit(_outcome_code(args))


def _outcome_code(args: list[str]) -> int:
    """Run the command; its exit code, from its outcome or from the error that ended it."""
    outcome: str = Outcome.FAILED
    try:
        result = app.main(args=args, prog_name="vigil", standalone_mode=False)
        if isinstance(result, int):
            return result  # click's own ending: --help, --version
        outcome = result or Outcome.SUCCESS  # a command with nothing to report succeeded
    except click.Abort:
        print("vigil: aborted", file=sys.stderr)
    except ConfigError as exc:
        print(f"vigil: error: {exc}", file=sys.stderr)
        outcome = USAGE
    except VigilError as exc:
        print(f"vigil: error: {exc}", file=sys.stderr)
    except Interrupted as exc:
        print(f"vigil: interrupted by {exc.signame}", file=sys.stderr)
    except KeyboardInterrupt:
        print("vigil: interrupted", file=sys.stderr)
    except click.exceptions.NoArgsIsHelpError as exc:
        print(exc.format_message(), file=sys.stderr)
        outcome = USAGE
    except click.UsageError as exc:
        print(f"vigil: error: {exc.format_message()}{_help_hint(exc)}", file=sys.stderr)
        # A monitoring system reads health's exit code: 2 would be CRITICAL.
        outcome = "UNKNOWN" if exc.ctx is not None and exc.ctx.info_name in ("health", "fleet") else USAGE
    except Exception as exc:  # noqa: BLE001 - never a traceback for the operator
        log.debug("internal error", exc_info=True)
        print(f"vigil: internal error: {exc.__class__.__name__}: {exc} (run with -v for details)", file=sys.stderr)
    return EXIT_CODES[outcome]


def _exit(code: int) -> None:
    """Exit without the interpreter's teardown when nothing is left to do.

    Freeing the imported modules takes tens of ms,
    and does nothing for the user: output is flushed and log files are closed
    here, and with no thread left running there is no work to wait for."""
    import threading

    if threading.active_count() > 1:
        sys.exit(code)
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except (BrokenPipeError, ValueError):
        pass  # a reader that went away, or a stream closed: nothing more to say there
    logging.shutdown()
    os._exit(code)


def _help_hint(exc: click.UsageError) -> str:
    return f" (see '{exc.ctx.command_path if exc.ctx is not None else 'vigil'} --help')"
