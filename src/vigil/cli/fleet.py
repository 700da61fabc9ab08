"""`vigil fleet URL`: health of every job that backs up under a store's prefix, no job file needed."""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from pathlib import Path

import click

FORMATS = ["text", "json", "nagios", "prometheus", "html"]


@click.command()
@click.argument("url")
@click.option("--endpoint-url", metavar="URL", help="S3-compatible endpoint (MinIO, Ceph RGW, ...)")
@click.option("--format", "fmt", type=click.Choice(FORMATS), default="text", show_default=True, help="Output format")
@click.option("--output", type=click.Path(dir_okay=False, path_type=Path), metavar="FILE",
              help="Write the output to FILE (replaced whole) instead of stdout")
def fleet(url: str, endpoint_url: str | None, fmt: str, output: Path | None) -> str:
    """Health of every job under s3://BUCKET/PREFIX/ or a directory, from status.json and newest manifests.

    Exit codes as `vigil health`: 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN (also for a prefix that
    holds no job or cannot be listed)."""
    from vigil.actions.fleet import check_fleet, worst_first
    from vigil.actions.health import RENDERERS, UNKNOWN, nagios_summary, overall
    from vigil.cli.report import write_page
    from vigil.errors import VigilError

    now = datetime.now(UTC)
    try:
        jobs = worst_first(check_fleet(url, endpoint_url, now))
    except VigilError as exc:
        return _unknown(fmt, f"{exc}")
    if not jobs:
        return _unknown(fmt, f"no job under {url} (no folder holds a status.json or a backup): "
                             "an empty or mistyped prefix")
    results = [j.health for j in jobs]
    if fmt == "html":
        from vigil.cli.page import fleet_page

        text = fleet_page(jobs, url, now)
    elif fmt == "nagios":
        # One line for any number of jobs: counts as perfdata, not two values per job.
        counts = {s: sum(1 for r in results if r.status == s) for s in ("OK", "WARNING", "CRITICAL", "UNKNOWN")}
        text = nagios_summary(results) + f" | jobs={len(results)};;;0; " + " ".join(
            f"{s.lower()}={n};;;0;" for s, n in counts.items())
    else:
        text = RENDERERS[fmt](results)
    if output is None:
        print(text.rstrip("\n"))
    else:
        write_page(output, text if text.endswith("\n") else text + "\n")
    return overall(results) if results else UNKNOWN


def _unknown(fmt: str, line: str) -> str:
    """A check that cannot run is UNKNOWN (3), said in one line (on stdout for Nagios, which shows it)."""
    if fmt == "nagios":
        print(f"VIGIL UNKNOWN - {line}")
    else:
        print(f"vigil: fleet: {line}", file=sys.stderr)
    return "UNKNOWN"
