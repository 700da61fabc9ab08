"""The `vigil` command: parses arguments, loads jobs, maps outcomes to exit codes.

Nothing else in vigil exits the process; every error that reaches here
becomes one line on stderr and the exit code of SPEC §1.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

# click, not typer: typer (0.2x) builds a pydantic validator for every parameter,
# and importing pydantic for that cost every command ~0.07 s of its start-up.
import click

from vigil import __version__
from vigil.config.schema import Job, load_config, select_jobs
from vigil.errors import ConfigError, Interrupted, VigilError
from vigil.state.journal import DIED, FAILED, INTERRUPTED, SKIPPED, SUCCESS, Journal
from vigil.logs import setup_logging
from vigil.pipeline.progress import meter
from vigil.timeutil import format_duration, iso

if TYPE_CHECKING:
    from vigil.actions.backup import RunResult

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_SKIPPED = 0, 1, 2, 75
# One table maps outcomes to exit codes; with several jobs the worst wins.
OUTCOME_EXIT = {SUCCESS: EXIT_OK, SKIPPED: EXIT_SKIPPED, FAILED: EXIT_FAILED, INTERRUPTED: EXIT_FAILED,
                DIED: EXIT_FAILED}
SEVERITY = {SUCCESS: 0, SKIPPED: 1, FAILED: 2, INTERRUPTED: 2, DIED: 2}


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


log = logging.getLogger("vigil")


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


def _state(ctx: click.Context) -> State:
    return ctx.obj


def _one_job(ctx: click.Context, job: str | None) -> list[Job]:
    """The named job, or every job."""
    return _state(ctx).jobs([job] if job else None)


def _done(code: int) -> NoReturn:
    """End the command with this exit code (main() turns it into the process's)."""
    raise click.exceptions.Exit(code)


# Arguments and options several commands share.
_JOBS = click.argument("jobs", nargs=-1, metavar="[JOB]...")
_JOB = click.argument("job", required=False)
_JSON = click.option("--json", "as_json", is_flag=True, help="Machine-readable output")
_ROOT = click.option("--root", type=click.Path(path_type=Path), default=Path("/"), show_default=True,
                     help="Operate on (or read schedules from) this tree instead of /")


def _print_json(data: Any) -> None:
    print(json.dumps(data, indent=2, ensure_ascii=False))


def _table(rows: list[list[str]], header: list[str]) -> str:
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    lines = ["  ".join(str(c).ljust(w) for c, w in zip(r, widths)).rstrip() for r in [header, *rows]]
    return "\n".join(lines)


def human_size(n: int | None) -> str:
    if n is None:
        return "-"
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if size < 1024 or unit == "TiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{n} B"


# --- run --------------------------------------------------------------------------


@app.command()
@_JOBS
@click.pass_context
def run(ctx: click.Context, jobs: tuple[str, ...]) -> None:
    """Run a backup of each job (default: all): lock, hooks, sources, destinations, verify, retention, notify."""
    from vigil.notify import RunNotifier
    from vigil.actions.backup import Run  # only here: the other commands start without the run machinery

    selected = _state(ctx).jobs(list(jobs))
    notifier = RunNotifier(log)
    results: list[RunResult] = []
    for job in selected:
        with meter(_state(ctx).progress) as m:
            result = Run(job, log=log, notifier=notifier, meter=m).execute()
        results.append(result)
        _report(result)
        if result.outcome == INTERRUPTED:
            break  # a signal stops the whole command, not just this job
    worst = max(results, key=lambda r: SEVERITY[r.outcome])
    _done(OUTCOME_EXIT[worst.outcome])


def _report(result: RunResult) -> None:
    if result.outcome == SUCCESS:
        warn = f" with {len(result.warnings)} warning(s)" if result.warnings else ""
        log.info("%s: backup %s complete%s", result.job, result.backup_id, warn)
    elif result.outcome == SKIPPED:
        print(f"vigil: {result.job}: skipped: {result.error}", file=sys.stderr)
    else:
        print(f"vigil: {result.job}: {result.outcome} at step {result.step}: {result.error}", file=sys.stderr)


# --- list ---------------------------------------------------------------------------


@app.command("list")
@_JOB
@_JSON
@click.pass_context
def list_(ctx: click.Context, job: str | None, as_json: bool) -> None:
    """Complete backups per destination, newest first (default: every job)."""
    from vigil.destinations.base import make_destination

    rows: list[dict[str, Any]] = []
    for j in _one_job(ctx, job):
        for dcfg in j.destination:
            try:
                scan = make_destination(dcfg).scan(j.name)
            except VigilError as exc:
                # Show what the others hold, and say which destination is missing from
                # the list. The exit code stays 0 (SPEC §1: list exits 0 or 2);
                # `vigil health` is what turns an unreachable destination into an alert.
                print(f"vigil: {j.name}: {exc}", file=sys.stderr)
                continue
            for m in scan.complete:
                rows.append({
                    "id": m.id, "job": j.name, "destination": dcfg.name, "started_at": m.started_at,
                    "finished_at": m.finished_at, "size": m.size, "artifacts": [a.name for a in m.artifacts],
                    "warnings": m.warnings, "status": "complete", "reason": None,
                })
            for bad in scan.damaged:  # nothing of its manifest is shown: none of it checked out
                rows.append({
                    "id": bad.backup_id, "job": j.name, "destination": dcfg.name, "started_at": None,
                    "finished_at": None, "size": None, "artifacts": [], "warnings": [], "status": "damaged",
                    "reason": bad.reason,
                })
    # A backup id starts with its UTC start time: the order for damaged backups too.
    rows.sort(key=lambda r: (r["id"][:16], r["started_at"] or "", r["id"]), reverse=True)
    if as_json:
        _print_json(rows)
    elif not rows:
        print("no complete backups")
    else:
        _print_list(rows)


def _print_list(rows: list[dict[str, Any]]) -> None:
    print(_table(
        [[r["job"], r["destination"], r["id"], r["started_at"] or "-",
          human_size(r["size"]) if r["size"] is not None else "-", r["status"],
          str(len(r["warnings"])) if r["warnings"] else "-"] for r in rows],
        ["JOB", "DESTINATION", "ID", "STARTED", "SIZE", "STATUS", "WARNINGS"],
    ))
    for r in rows:
        if r["reason"]:
            print(f"{r['job']} on {r['destination']}: backup {r['id']} is damaged: {r['reason']}")


# --- runs ---------------------------------------------------------------------------


def journals(jobs: list[Job]) -> dict[str, Journal]:
    """One journal per distinct state dir (jobs may share one)."""
    out: dict[str, Journal] = {}
    for j in jobs:
        key = str(j.state_dir)
        if key not in out and (j.state_dir / "journal.db").exists():
            out[key] = Journal(j.state_dir)
    return out


@app.command()
@_JOB
@_JSON
@click.option("--limit", "-n", type=click.IntRange(min=0), default=0, help="Show at most N attempts (0: all)")
@click.pass_context
def runs(ctx: click.Context, job: str | None, as_json: bool, limit: int) -> None:
    """The run journal: every attempt, its outcome and who started it."""
    selected = _one_job(ctx, job)
    names = {j.name for j in selected}
    rows = []
    for journal in journals(selected).values():
        rows.extend(r for r in journal.runs(job) if r.job in names)
        journal.close()
    rows.sort(key=lambda r: r.started_at, reverse=True)
    if limit:
        rows = rows[:limit]
    if as_json:
        _print_json([r.to_json() for r in rows])
        return
    if not rows:
        print("no runs recorded")
        return
    table = []
    for r in rows:
        took = format_duration(r.finished_at - r.started_at) if r.finished_at else "-"
        detail = r.error or (f"{len(r.warnings)} warning(s): {r.warnings[0]}" if r.warnings else "")
        table.append([r.run_id, r.job, r.outcome, r.step or "-", iso(r.started_at) or "", took,
                      (r.started_by or "?")[:40], detail])
    print(_table(table, ["RUN", "JOB", "OUTCOME", "STEP", "STARTED", "TOOK", "STARTED BY", "DETAIL"]))


# --- health ---------------------------------------------------------------------------


@app.command()
@_JOBS
@click.option("--format", "fmt", type=click.Choice(["text", "nagios", "json", "prometheus"]), default="text",
              show_default=True, help="Output format")
@click.option("--notify", is_flag=True, help="Send unhealthy/recovered on transitions")
@click.pass_context
def health(ctx: click.Context, jobs: tuple[str, ...], fmt: str, notify: bool) -> None:
    """Is every job backed up recently, and nothing stuck, failed or duplicated? (Nagios exit codes)"""
    from datetime import datetime, timezone

    from vigil.actions.health import EXIT, RENDERERS, UNKNOWN, overall
    from vigil.actions.monitor import check, notify_transitions

    try:
        selected = _state(ctx).jobs(list(jobs))
    except ConfigError as exc:
        # Nagios: a check that cannot run is UNKNOWN, not CRITICAL.
        print(f"VIGIL UNKNOWN - {exc}" if fmt == "nagios" else f"vigil: error: {exc}",
              file=sys.stdout if fmt == "nagios" else sys.stderr)
        _done(EXIT[UNKNOWN])
    now = datetime.now(timezone.utc)
    results = [check(j, now) for j in selected]
    print(RENDERERS[fmt](results))
    if notify:
        for j, r in zip(selected, results):
            try:
                notify_transitions(j, r, log)
            except VigilError as exc:
                log.warning("%s: cannot record health state: %s", j.name, exc)
    _done(EXIT[overall(results)])


# --- verify / restore -------------------------------------------------------------------


@app.command()
@_JOB
@click.argument("backup_id", metavar="[BACKUP_ID|latest]", default="latest")
@click.option("--deep", is_flag=True, help="Decompress and check every file and dump")
@click.option("--restore-test", is_flag=True, help="Load database dumps into scratch databases")
@click.option("--all", "every", is_flag=True, help="Every backup of the job, not one")
@click.pass_context
def verify(ctx: click.Context, job: str | None, backup_id: str, deep: bool, restore_test: bool, every: bool) -> None:
    """Check stored backups (default: every job's latest): present, intact, readable, restorable."""
    from vigil.destinations.base import make_destination
    from vigil.actions.monitor import record_verify
    from vigil.actions.verify import Verifier

    from vigil.formats.manifest import is_backup_id

    problems = backups = 0
    jobs = _state(ctx).jobs()
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
            with meter(_state(ctx).progress) as m:
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
    _done(EXIT_FAILED if problems else EXIT_OK)


@app.command()
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
@click.pass_context
def restore(ctx: click.Context, job: str, backup_id: str, source: str, to: Path | None, to_database: str | None,
            to_file: Path | None, include: tuple[str, ...], force: bool, destination: str | None,
            as_json: bool) -> None:
    """Restore one source of a backup into a directory, a database or a file."""
    from vigil.actions.restore import restore as do_restore

    [j] = _state(ctx).jobs([job])
    with meter(_state(ctx).progress) as m:
        summary = do_restore(j, backup_id, source, to_dir=to, to_database=to_database, to_file=to_file,
                             include=list(include), force=force, log=log, meter=m, destination=destination)
    if as_json:
        _print_json(summary.to_json())
    else:
        print(f"restored source {summary.source} of backup {summary.backup_id} from {summary.destination} "
              f"to {summary.target}: {summary.entries} entries, {human_size(summary.bytes)} "
              f"in {summary.seconds:.1f}s")
        for line in summary.skipped:
            print(f"  skipped: {line}")


# --- prune ------------------------------------------------------------------------------


@app.command()
@_JOB
@click.option("--dry-run", is_flag=True, help="Show every decision, delete nothing")
@click.pass_context
def prune(ctx: click.Context, job: str | None, dry_run: bool) -> None:
    """Apply the retention policy (default: every job): delete backups no rule keeps."""
    from vigil.actions.prune import dead_runs, prune_job

    failed = False
    for j in _one_job(ctx, job):
        history = _job_runs(j)
        last = next((r for r in history if r.outcome not in ("skipped", "running")), None)
        if last is not None and last.outcome != SUCCESS and not dry_run:
            print(f"vigil: {j.name}: not pruning: the last run ({last.run_id}) {last.outcome}; "
                  "prune after a successful run", file=sys.stderr)
            failed = True
            continue
        try:
            outcomes = prune_job(j, dry_run, log, dead=dead_runs(history))
        except VigilError as exc:
            print(f"vigil: {j.name}: {exc}", file=sys.stderr)
            failed = True
            continue
        for o in outcomes:
            rows = [[d.backup.id, iso(d.backup.time) or "", "keep" if d.keep else
                     ("would delete" if dry_run else "deleted"), ", ".join(d.reasons) or "-"] for d in o.decisions]
            print(f"{j.name} on {o.destination}:")
            print(_table(rows, ["ID", "STARTED", "DECISION", "KEPT BY"]) if rows else "  no backups")
            for p in o.partials_removed:
                print(f"  unfinished backup {p}: {'would remove' if dry_run else 'removed'}")
            for bad in o.damaged:
                print(f"  damaged backup {bad.backup_id}: left in place ({bad.reason})")
    _done(EXIT_FAILED if failed else EXIT_OK)


def _job_runs(job: Job) -> list:
    """The job's journal rows, newest first; none when it has no journal yet."""
    if not (job.state_dir / "journal.db").exists():
        return []
    journal = Journal(job.state_dir)
    try:
        return journal.runs(job.name)
    finally:
        journal.close()


# --- doctor / schedule ----------------------------------------------------------------------


@app.command()
@_JOB
@_ROOT
@click.option("--strict", is_flag=True, help="Warnings count as problems")
@click.option("--test-notify", is_flag=True, help="Also send a test message on every channel")
@click.pass_context
def doctor(ctx: click.Context, job: str | None, root: Path, strict: bool, test_notify: bool) -> None:
    """Audit config, secrets, permissions, tools, destinations, notifications and schedules."""
    from vigil.actions.doctor import OK, PROBLEM, WARNING, diagnose

    bad = 0
    jobs = _one_job(ctx, job)
    for j in jobs:
        print(f"{j.name}:")
        for f in diagnose(j, root):
            print(f"  {f.level:<8} {f.check}: {f.message}" + (f"\n           fix: {f.fix}" if f.fix and f.level != OK else ""))
            bad += f.level == PROBLEM or (strict and f.level == WARNING)
    if test_notify:
        bad += _send_tests(jobs)
    _done(EXIT_FAILED if bad else EXIT_OK)


@app.group(no_args_is_help=True)
def schedule() -> None:
    """Write, show or remove the one schedule of a job."""


@schedule.command("install")
@_JOB
@click.option("--systemd/--cron", default=True, help="systemd timer (default) or /etc/cron.d")
@_ROOT
@click.pass_context
def schedule_install(ctx: click.Context, job: str | None, systemd: bool, root: Path) -> None:
    """Schedule a job exactly once (refuses if it is scheduled anywhere already)."""
    from vigil.actions.schedule import audit, audit_verify, planned_files

    # Absolute, as typed (not symlink-resolved): cron and systemd start elsewhere than here.
    config = os.path.abspath(_state(ctx).config or os.environ.get("VIGIL_CONFIG") or "/etc/vigil/jobs/")
    failed = False
    for j in _one_job(ctx, job):
        existing = audit(j, root) + audit_verify(j, root)
        if existing:
            print(f"vigil: {j.name}: already scheduled; not installing another schedule:", file=sys.stderr)
            for e in existing:
                print(f"  {e.describe()}", file=sys.stderr)
            failed = True
            continue
        for rel, text in planned_files(j, systemd, config).items():
            path = root / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
            path.chmod(0o644)
            print(f"wrote {path}")
        if systemd:
            timers = [f"vigil-{j.name}.timer", f"vigil-{j.name}-health.timer"]
            timers += [f"vigil-{j.name}-verify.timer"] if j.schedule.verify_every else []
            print(f"enable it with: systemctl daemon-reload && systemctl enable --now {' '.join(timers)}")
    _done(EXIT_FAILED if failed else EXIT_OK)


@schedule.command("show")
@_JOB
@_ROOT
@click.pass_context
def schedule_show(ctx: click.Context, job: str | None, root: Path) -> None:
    """Every schedule that runs the job, and where it is."""
    from vigil.actions.schedule import audit, audit_verify

    for j in _one_job(ctx, job):
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
@_JOB
@_ROOT
@click.pass_context
def schedule_remove(ctx: click.Context, job: str | None, root: Path) -> None:
    """Remove what `schedule install` wrote (and nothing else)."""
    from vigil.actions.schedule import installed_files

    for j in _one_job(ctx, job):
        files = installed_files(j, root)
        if not files:
            print(f"{j.name}: nothing installed by vigil")
        for f in files:
            f.unlink()
            print(f"removed {f}")


# --- notify ---------------------------------------------------------------------------

@app.group(no_args_is_help=True)
def notify() -> None:
    """Deliver queued notifications, or test every channel."""


@notify.command("flush")
@_JOBS
@click.pass_context
def notify_flush(ctx: click.Context, jobs: tuple[str, ...]) -> None:
    """Deliver every queued notification (default: every job's); exit 1 if any still fails."""
    from vigil.notify import flush

    delivered, failed = flush(_state(ctx).jobs(list(jobs), flush=False), log)
    print(f"delivered {delivered}, still queued {failed}")
    _done(EXIT_FAILED if failed else EXIT_OK)


@notify.command("test")
@_JOB
@click.pass_context
def notify_test(ctx: click.Context, job: str | None) -> None:
    """Send a test message on every channel (default: every job's) and report each result."""
    _done(EXIT_FAILED if _send_tests(_one_job(ctx, job)) else EXIT_OK)


def _send_tests(jobs: list[Job]) -> int:
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
        for cfg, err in zip(j.notify, deliver([(c, msg) for c in j.notify], log, attempts=1)):
            print(f"{j.name}: {channels.describe(cfg)}: {'OK' if err is None else f'FAILED: {err}'}")
            failed += err is not None
    return failed


# --- entry point ----------------------------------------------------------------------


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
    sys.stdout = _Output(sys.stdout)  # type: ignore[assignment]
    args = sys.argv[1:] if argv is None else argv
    try:
        code = app.main(args=args, prog_name="vigil", standalone_mode=False)
    except click.Abort:
        print("vigil: aborted", file=sys.stderr)
        code = EXIT_FAILED
    except ConfigError as exc:
        print(f"vigil: error: {exc}", file=sys.stderr)
        code = EXIT_USAGE
    except VigilError as exc:
        print(f"vigil: error: {exc}", file=sys.stderr)
        code = EXIT_FAILED
    except Interrupted as exc:
        print(f"vigil: interrupted by {exc.signame}", file=sys.stderr)
        code = EXIT_FAILED
    except KeyboardInterrupt:
        print("vigil: interrupted", file=sys.stderr)
        code = EXIT_FAILED
    except click.exceptions.NoArgsIsHelpError as exc:
        print(exc.format_message(), file=sys.stderr)
        code = EXIT_USAGE
    except click.UsageError as exc:
        print(f"vigil: error: {exc.format_message()}{_help_hint(exc)}", file=sys.stderr)
        code = EXIT_USAGE
        # A monitoring system reads health's exit code: 2 would be CRITICAL.
        if exc.ctx is not None and exc.ctx.info_name == "health":
            from vigil.actions.health import EXIT, UNKNOWN

            code = EXIT[UNKNOWN]
    except Exception as exc:  # noqa: BLE001 - never a traceback for the operator
        log.debug("internal error", exc_info=True)
        print(f"vigil: internal error: {exc.__class__.__name__}: {exc} (run with -v for details)", file=sys.stderr)
        code = EXIT_FAILED
    _exit(code if isinstance(code, int) else EXIT_OK)


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
