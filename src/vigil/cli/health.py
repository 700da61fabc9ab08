"""`vigil health`: is every job backed up recently? Ends with the worst job's Nagios status."""

from __future__ import annotations

import sys
from datetime import UTC

import click

from vigil.cli.common import JOBS, log, state
from vigil.errors import ConfigError, VigilError


@click.command()
@JOBS
@click.option("--format", "fmt", type=click.Choice(["text", "nagios", "json", "prometheus"]), default="text",
              show_default=True, help="Output format")
@click.option("--notify", is_flag=True, help="Send unhealthy/recovered on transitions")
@click.pass_context
def health(ctx: click.Context, jobs: tuple[str, ...], fmt: str, notify: bool) -> str:
    """Is every job backed up recently, and nothing stuck, failed or duplicated? (Nagios exit codes)"""
    from datetime import datetime

    from vigil.actions.health import RENDERERS, UNKNOWN, overall
    from vigil.actions.monitor import check, notify_transitions

    try:
        selected = state(ctx).jobs(list(jobs))
    except ConfigError as exc:
        # Nagios: a check that cannot run is UNKNOWN, not CRITICAL.
        print(f"VIGIL UNKNOWN - {exc}" if fmt == "nagios" else f"vigil: error: {exc}",
              file=sys.stdout if fmt == "nagios" else sys.stderr)
        return UNKNOWN
    now = datetime.now(UTC)
    results = [check(j, now) for j in selected]
    print(RENDERERS[fmt](results))
    if notify:
        for j, r in zip(selected, results, strict=False):
            try:
                notify_transitions(j, r, log)
            except VigilError as exc:
                log.warning("%s: cannot record health state: %s", j.name, exc)
    return overall(results)
