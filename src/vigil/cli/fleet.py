"""`vigil fleet URL`: health of every job that backs up under a store's prefix, no job file needed."""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import click

if TYPE_CHECKING:
    from vigil.actions.fleet import FleetJob

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
    from vigil.actions.health import UNKNOWN, overall
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
    try:
        text = _render(fmt, jobs, url, now)
    except Exception as exc:  # noqa: BLE001 - a check that cannot answer is UNKNOWN, not a failure
        return _unknown(fmt, f"cannot render the {fmt} output: {exc.__class__.__name__}: {exc}")
    if output is None:
        print(text.rstrip("\n"))
    else:
        try:
            write_page(output, text if text.endswith("\n") else text + "\n")
        except VigilError as exc:
            return _unknown(fmt, f"{exc}")
    return overall(results) if results else UNKNOWN


def _render(fmt: str, jobs: list[FleetJob], url: str, now: datetime) -> str:
    from vigil.actions.health import RENDERERS, nagios_summary

    results = [j.health for j in jobs]
    if fmt == "html":
        from vigil.cli.page import fleet_page

        return fleet_page(jobs, url, now)
    if fmt == "nagios":
        # One line for any number of jobs: counts as perfdata, not two values per job.
        counts = {s: sum(1 for r in results if r.status == s) for s in ("OK", "WARNING", "CRITICAL", "UNKNOWN")}
        return nagios_summary(results) + f" | jobs={len(results)};;;0; " + " ".join(
            f"{s.lower()}={n};;;0;" for s, n in counts.items())
    return RENDERERS[fmt](results)


def _unknown(fmt: str, line: str) -> str:
    """A check that cannot run is UNKNOWN (3), said in one line (on stdout for Nagios, which shows it)."""
    if fmt == "nagios":
        # One line, and no '|' (which would start perfdata), as nagios_summary writes it.
        print(f"VIGIL UNKNOWN - {' '.join(line.split())}".replace("|", "/"))
    else:
        print(f"vigil: fleet: {line}", file=sys.stderr)
    return "UNKNOWN"
