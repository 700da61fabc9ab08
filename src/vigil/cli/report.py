"""`vigil report`: each job's runs of the last N days, the backups its destinations hold; --html for a page."""

from __future__ import annotations

import os
import socket
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import click

from vigil.cli.common import JOBS, state
from vigil.cli.render import table
from vigil.errors import ConfigError
from vigil.sizes import human_size
from vigil.timeutil import format_duration, iso

if TYPE_CHECKING:
    from vigil.actions.report import JobReport


@click.command()
@JOBS
@click.option("--days", type=click.IntRange(min=1, max=36500), default=30, show_default=True,
              help="The period: the last N days")
@click.option("--html", "html_file", type=click.Path(dir_okay=False, path_type=Path), metavar="FILE",
              help="Write a self-contained HTML page with plots to FILE")
@click.pass_context
def report(ctx: click.Context, jobs: tuple[str, ...], days: int, html_file: Path | None) -> None:
    """Backup history: runs, outcomes, durations, sizes, what each destination holds."""
    from vigil.actions.report import report as job_report

    selected = state(ctx).jobs(list(jobs))
    now = datetime.now(UTC)
    reports = [job_report(j, days, now) for j in selected]
    if html_file is None:
        print("\n\n".join(_text(r) for r in reports))
        return
    from vigil.cli.page import report_page

    write_page(html_file, report_page(reports, days, now, socket.gethostname()))
    if str(html_file) != "-":
        print(f"wrote {html_file}", file=sys.stderr)


def write_page(path: Path, text: str) -> None:
    """`-` is stdout; a file is replaced whole (a browser never reads half of one).

    The temporary file gets a fresh name, created exclusively: a link or file planted at a
    predictable name beside the target is never written through."""
    if str(path) == "-":
        sys.stdout.write(text)
        return
    tmp = ""
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            os.fchmod(f.fileno(), 0o644)  # a report is for reading; it holds nothing secret
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        if tmp:
            Path(tmp).unlink(missing_ok=True)
        # An unwritable FILE argument is a usage error: one line, exit 2.
        raise ConfigError(f"cannot write {path}: {exc.strerror or exc}") from None


def _text(r: JobReport) -> str:
    from vigil.actions.report import kind, run_took

    h = r.health
    lines = [f"{r.job}: {h.status}, {len(r.runs)} run(s) from {iso(r.since)[:10]} to {iso(r.until)[:10]}"
             + (" (no journal on this host)" if r.journal_missing else "")]
    lines += [f"  - {reason}" for reason in h.reasons]
    if r.runs:
        rows = []
        for run in r.runs:
            seconds = run_took(run)
            took = "-" if seconds is None else format_duration(seconds)
            detail = run.error or (f"{len(run.warnings)}: {run.warnings[0]}" if run.warnings else "")
            rows.append([iso(run.started_at) or "", run.outcome, run.step or "-", took, human_size(run.bytes),
                         detail or "-", (run.started_by or "?")[:40]])
        lines += ["", table(rows, ["STARTED", "OUTCOME", "STEP", "TOOK", "SIZE", "WARNINGS/ERROR", "STARTED BY"])]
    held = []
    for d in r.held:
        if d.error:
            held.append([d.destination, "-", "-", "-", f"unreachable: {d.error}"])
            continue
        newest = d.backups[0] if d.backups else None
        held.append([d.destination, str(len(d.backups)), human_size(d.total),
                     f"{newest.id} ({kind(newest)})" if newest else "-",
                     f"{d.damaged} damaged" if d.damaged else ""])
    lines += ["", table(held, ["DESTINATION", "BACKUPS", "TOTAL", "NEWEST", ""])]
    return "\n".join(lines)
