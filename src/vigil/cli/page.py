"""The HTML pages of `vigil report --html` and `vigil fleet --format html`: one self-contained file each.

Inline CSS and SVG only: no script, no font, no image, nothing fetched (the
Content-Security-Policy says so to the browser too). Every text from a job,
a run or a store is escaped (svg.esc).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from datetime import datetime

from vigil.actions.fleet import FleetJob, deadline, facts
from vigil.actions.health import JobHealth
from vigil.actions.report import JobReport, kind, run_took
from vigil.cli.svg import Event, Point, esc, legend, mark, mark_defs, time_plot, timeline
from vigil.sizes import human_size
from vigil.state.journal import Outcome, RunRow
from vigil.timeutil import format_duration, iso

NEWEST_BACKUPS = 5  # per destination
PROBLEM_RUNS = 30  # the newest runs that did not succeed, listed under the plots

CSS = """
:root{color-scheme:light}
*{box-sizing:border-box}
body{margin:0;font:15px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,"Helvetica Neue",Arial,sans-serif;
 background:#eef0f3;color:#1c2330}
header{background:#1c2330;color:#fff;padding:14px 20px}
header h1{font-size:20px;margin:0}
header p{margin:4px 0 0;color:#c9d1de;font-size:13px}
main{max-width:1240px;margin:0 auto;padding:16px}
.legend{display:flex;flex-wrap:wrap;gap:6px 16px;margin:0 0 14px;font-size:13px;color:#39414f}
.legend-item{display:inline-flex;align-items:center;gap:5px}
section.job{background:#fff;border-radius:8px;box-shadow:0 1px 3px rgba(0,0,0,.12);padding:14px 16px;
 margin:0 0 16px;min-width:0}
section.job h2{font-size:17px;margin:0 0 6px;display:flex;flex-wrap:wrap;align-items:center;gap:8px;
 overflow-wrap:anywhere}
.host{font-weight:400;color:#5b6472;font-size:14px}
.badge{display:inline-block;border-radius:4px;padding:1px 8px;font-size:12px;font-weight:700;color:#fff}
.OK{background:#2e7d32}.WARNING{background:#b26a00}.CRITICAL{background:#c62828}.UNKNOWN{background:#616161}
ul.reasons{margin:4px 0 10px;padding-left:20px;overflow-wrap:anywhere}
ul.reasons li{margin:2px 0}
.summary{color:#39414f;margin:4px 0 10px;overflow-wrap:anywhere}
.plots{display:grid;grid-template-columns:repeat(auto-fit,minmax(300px,1fr));gap:12px;margin:8px 0}
figure{margin:0;min-width:0}
figcaption{font-size:13px;font-weight:600;color:#39414f;margin:0 0 2px}
svg.plot{display:block;width:100%;height:auto;background:#fafbfc;border:1px solid #e1e4e8;border-radius:4px}
svg.timeline{max-width:520px}
svg .grid{stroke:#e3e6ea;stroke-width:1}
svg .axisline,svg .tick{stroke:#9aa3ae;stroke-width:1}
svg .axis{fill:#5b6472;font-size:12px}
svg .note{fill:#5b6472;font-size:13px}
svg .series{fill:none;stroke:#1565c0;stroke-width:1.6;stroke-linejoin:round}
svg .rule{stroke-width:2}
.legend svg .rule{stroke-width:3}
svg .rule.now{stroke:#1c2330}
svg .rule.deadline{stroke:#c62828;stroke-dasharray:4 3}
svg .rule.backup{stroke:#2e7d32}
h3{font-size:14px;margin:14px 0 4px}
.scroll{overflow-x:auto}
table{border-collapse:collapse;width:100%;font-size:13px}
th,td{text-align:left;padding:4px 8px;border-bottom:1px solid #e6e8eb;vertical-align:top;white-space:nowrap}
th{color:#5b6472;font-weight:600;white-space:nowrap}
td.num,th.num{text-align:right;white-space:nowrap}
td.err{white-space:normal;overflow-wrap:anywhere;min-width:14em}
td svg{vertical-align:middle}
.fleet{display:grid;grid-template-columns:repeat(auto-fill,minmax(360px,1fr));gap:14px}
.fleet section.job{margin:0}
.counts{display:flex;flex-wrap:wrap;gap:8px;margin:0 0 12px}
@media (max-width:640px){
 main{padding:8px}
 section.job{padding:10px}
 .fleet{grid-template-columns:1fr}
 .plots{grid-template-columns:1fr}
 th,td{padding:3px 5px}
}
"""


def _page(title: str, subtitle: str, body: str) -> str:
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            "<meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">"
            # Nothing may be fetched or run: the page is its own whole world.
            "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; "
            "style-src 'unsafe-inline'; img-src data:\">"
            f"<title>{esc(title)}</title><style>{CSS}</style></head><body>"
            f"<header><h1>{esc(title)}</h1><p>{esc(subtitle)}</p></header><main>{mark_defs()}{legend()}"
            f"{body}</main></body></html>\n")


def short(t: float | datetime | None) -> str:
    """A time to the minute, UTC: "2026-12-04 19:02Z"."""
    text = iso(t)
    return f"{text[:10]} {text[11:16]}Z" if text else "-"


def _axis_size(v: float) -> str:
    """A size for an axis label: three digits at most ("382 MiB", "1.5 GiB")."""
    text = human_size(int(v))
    number, _, unit = text.partition(" ")
    return f"{float(number):.0f} {unit}" if "." in number and float(number) >= 10 else text


def _axis_duration(v: float) -> str:
    """A duration for an axis label, fine enough for the sub-second runs of a small job."""
    if v < 1:
        return f"{v * 1000:.0f}ms"
    return f"{v:.1f}s" if v < 10 else format_duration(v)


def _badge(status: str) -> str:
    return f'<span class="badge {esc(status)}">{esc(status)}</span>'


def _reasons(h: JobHealth) -> str:
    if not h.reasons:
        return ""
    return '<ul class="reasons">' + "".join(f"<li>{esc(r)}</li>" for r in h.reasons) + "</ul>"


def _table(header: Sequence[str], rows: Sequence[Sequence[str]], numeric: Sequence[int] = (),
           wide: Sequence[int] = ()) -> str:
    """Cells are markup already escaped by the caller."""
    head = "".join(f'<th class="{"num" if i in numeric else ""}">{esc(h)}</th>' for i, h in enumerate(header))
    body = "".join("<tr>" + "".join(
        f'<td class="{"num" if i in numeric else "err" if i in wide else ""}">{c}</td>' for i, c in enumerate(r))
        + "</tr>" for r in rows)
    return f'<div class="scroll"><table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></div>'


def _icon(outcome: str, title: str) -> str:
    return f'<svg viewBox="0 0 12 12" width="14" height="14">{mark(outcome, 6, 6, title, 12)}</svg>'


def _run_title(r: RunRow) -> str:
    took = run_took(r)
    took_text = "-" if took is None else format_duration(took)
    text = f"{iso(r.started_at)} {r.outcome}, took {took_text}"
    if r.bytes is not None:
        text += f", {human_size(r.bytes)}"
    if r.step and r.outcome != Outcome.SUCCESS:
        text += f", step {r.step}"
    if r.error:
        text += f": {r.error}"
    return text


def _job_section(rep: JobReport) -> str:
    h = rep.health
    counts = Counter(str(r.outcome) for r in rep.runs)
    summary = ", ".join(f"{n} {o}" for o, n in counts.most_common()) or "no runs"
    sizes = [Point(r.started_at, float(r.bytes) if r.bytes is not None and r.outcome == Outcome.SUCCESS else None,
                   str(r.outcome), _run_title(r)) for r in rep.runs]
    # A died run's end is when a later run found it dead: no duration to draw.
    durations = [Point(r.started_at, run_took(r), str(r.outcome), _run_title(r)) for r in rep.runs
                 if r.outcome != Outcome.DIED]
    size_plot = time_plot(sizes, label=f"{rep.job}: backup size over time", fmt=_axis_size, css="size")
    duration_plot = time_plot(durations, label=f"{rep.job}: run duration over time", fmt=_axis_duration,
                              line=False, css="duration")
    plots = (f'<div class="plots"><figure><figcaption>Backup size</figcaption>{size_plot}</figure>'
             f'<figure><figcaption>Run duration</figcaption>{duration_plot}</figure></div>')
    held_rows = []
    for d in rep.held:
        if d.error:
            held_rows.append([esc(d.destination), "-", "-", f"unreachable: {esc(d.error)}"])
            continue
        note = f"{d.damaged} damaged" if d.damaged else ""
        held_rows.append([esc(d.destination), str(len(d.backups)), esc(human_size(d.total)), esc(note)])
    newest_rows = [[esc(d.destination), esc(m.id), esc(short(m.started)), esc(human_size(m.size)), esc(kind(m)),
                    str(len(m.warnings)) if m.warnings else ""]
                   for d in rep.held for m in d.backups[:NEWEST_BACKUPS]]
    problems = [r for r in rep.runs if r.outcome != Outcome.SUCCESS][:PROBLEM_RUNS]
    problem_rows = [[_icon(str(r.outcome), str(r.outcome)) + " " + esc(r.outcome), esc(short(r.started_at)),
                     esc(r.step or "-"), esc(r.error or ""), esc(r.started_by or "?")] for r in problems]
    parts = [f'<section class="job" data-job="{esc(rep.job)}"><h2>{esc(rep.job)} {_badge(h.status)}</h2>',
             _reasons(h),
             f'<p class="summary">{len(rep.runs)} run(s) {esc(iso(rep.since)[:10])} to {esc(iso(rep.until)[:10])}: '
             f'{esc(summary)}' + (" (no journal on this host)" if rep.journal_missing else "") + "</p>",
             plots,
             "<h3>Held per destination</h3>",
             _table(["Destination", "Backups", "Total size", ""], held_rows, numeric=(1, 2)),
             "<h3>Newest backups</h3>",
             _table(["Destination", "Backup", "Started", "Size", "Kind", "Warnings"], newest_rows, numeric=(3,))
             if newest_rows else "<p>none</p>"]
    if problem_rows:
        parts += [f"<h3>Runs that did not succeed (newest {len(problem_rows)})</h3>",
                  _table(["Outcome", "Started", "Step", "Error", "Started by"], problem_rows, wide=(3, 4))]
    parts.append("</section>")
    return "".join(parts)


def report_page(reports: Sequence[JobReport], days: int, now: datetime, host: str) -> str:
    body = "".join(_job_section(r) for r in reports) or "<p>no job</p>"
    return _page("vigil report", f"{host}: last {days} day(s), generated {iso(now)}", body)


def _fleet_section(j: FleetJob, now: datetime) -> str:
    h, folder = j.health, j.folder
    f, _ = facts(folder)
    events = [Event(now.timestamp(), f"now {iso(now)}", rule="now")]
    lines = []
    if folder.newest is not None:
        m = folder.newest
        events.append(Event(m.started.timestamp(), f"newest backup {m.id} started {m.started_at}", rule="backup"))
        lines.append(f"newest backup {esc(m.id)}: {esc(human_size(m.size))}, {esc(kind(m))}, "
                     f"{esc(format_duration((now - m.started).total_seconds()))} old")
    due = deadline(f)
    if due is not None:
        events.append(Event(due.timestamp(), f"next backup due by {iso(due)}", rule="deadline"))
    run = f.runs[0] if f.runs else None
    if run is not None:
        events.append(Event(run.started_at, f"last run {_run_title(run)}", outcome=str(run.outcome)))
        lines.append(f"{_icon(str(run.outcome), str(run.outcome))} last run {esc(run.outcome)} "
                     f"{esc(short(run.started_at))}" + (f" at step {esc(run.step)}" if run.step and run.outcome
                                                         != Outcome.SUCCESS else ""))
    if f.schedule:
        lines.append(f"schedule <code>{esc(f.schedule)}</code>, grace {esc(format_duration(f.grace.total_seconds()))}")
    elif f.max_age is not None:
        lines.append(f"max_age {esc(format_duration(f.max_age.total_seconds()))}")
    host = f' <span class="host">@{esc(h.host)}</span>' if h.host else ""
    return (f'<section class="job" data-job="{esc(h.job)}"><h2>{esc(h.job)}{host} {_badge(h.status)}</h2>'
            f"{_reasons(h)}<p class=\"summary\">{'<br>'.join(lines)}</p>"
            f"{timeline(events, label=f'{h.job}: newest backup, last run, now and deadline')}</section>")


def _safe_fleet_section(j: FleetJob, now: datetime) -> str:
    """One job's section; one whose values cannot be drawn still shows its status and reasons."""
    try:
        return _fleet_section(j, now)
    except Exception as exc:  # noqa: BLE001 - one strange job must not take the whole page down
        h = j.health
        return (f'<section class="job" data-job="{esc(h.job)}"><h2>{esc(h.job)} {_badge(h.status)}</h2>'
                f'{_reasons(h)}<p class="summary">cannot draw this job: {esc(exc.__class__.__name__)}: '
                f"{esc(str(exc))}</p></section>")


def fleet_page(jobs: Sequence[FleetJob], url: str, now: datetime) -> str:
    counts = Counter(j.health.status for j in jobs)
    badges = "".join(f"{_badge(s)} {counts[s]}&nbsp;" for s in ("CRITICAL", "WARNING", "UNKNOWN", "OK") if counts[s])
    rules = "".join(f'<span class="legend-item"><svg viewBox="0 0 6 14" width="6" height="14" aria-hidden="true">'
                    f'<line class="rule {cls}" x1="3" x2="3" y1="0" y2="14"/></svg>{esc(text)}</span>'
                    for cls, text in (("backup", "newest backup"), ("now", "now"), ("deadline", "next backup due by")))
    body = (f'<div class="legend">{rules}</div><div class="counts">{badges}</div><div class="fleet">'
            + "".join(_safe_fleet_section(j, now) for j in jobs) + "</div>")
    return _page("vigil fleet", f"{url}: {len(jobs)} job(s), {iso(now)}", body)
