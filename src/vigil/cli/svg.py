"""A small SVG writer for the report and fleet pages: plots over time, outcome marks, escaped text.

Pure functions returning markup strings. Every piece of text that comes from
a job, a run or a store goes through `esc`, so an error message holding
`<script>` stays text. Plots are drawn in a viewBox and scale to their
container (a phone's width or a wide screen alike).
"""

from __future__ import annotations

import html
import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

# Shape AND colour per outcome, so that they are told apart without colour vision too.
MARKS: dict[str, tuple[str, str]] = {
    "success": ('<circle r="2.6" fill="#2e7d32"/>', "success"),
    "failed": ('<path d="M-3.6-3.6L3.6 3.6M3.6-3.6L-3.6 3.6" stroke="#c62828" stroke-width="2.2" '
               'stroke-linecap="round"/>', "failed"),
    "died": ('<path d="M-4.2-3.2H4.2L0 4.2Z" fill="#111"/>', "died"),
    "interrupted": ('<path d="M0-4.4L4.4 0L0 4.4L-4.4 0Z" fill="#e65100"/>', "interrupted"),
    "skipped": ('<rect x="-3.2" y="-3.2" width="6.4" height="6.4" fill="#fff" stroke="#616161" '
                'stroke-width="1.6"/>', "skipped"),
    "running": ('<circle r="3.2" fill="#fff" stroke="#1565c0" stroke-width="1.8"/>', "running"),
}
MARK_SIZE = 11


# Characters no page may hold (control characters, lone surrogates from undecodable names): shown as escapes.
# The times a timeline draws. One far outside (a wrong clock, a forged status or manifest) is
# told in the job's reasons, not drawn: it would squash every other mark, or pass datetime's range.
DRAWN = (datetime(1970, 1, 2, tzinfo=UTC).timestamp(), datetime(2200, 1, 1, tzinfo=UTC).timestamp())
_UNPRINTABLE = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\ud800-\udfff]")


def esc(text: object) -> str:
    """Text for HTML or SVG, in content and in attribute values alike."""
    shown = _UNPRINTABLE.sub(lambda m: f"\\x{ord(m.group()):02x}", str(text))
    return html.escape(shown, quote=True)


def mark_defs() -> str:
    """The outcome shapes, defined once per page and drawn with <use>."""
    symbols = "".join(f'<symbol id="mk-{name}" viewBox="-5.5 -5.5 11 11">{shape}</symbol>'
                      for name, (shape, _) in MARKS.items())
    return (f'<svg class="defs" width="0" height="0" aria-hidden="true" style="position:absolute">'
            f'<defs>{symbols}</defs></svg>')


def mark(outcome: str, x: float, y: float, title: str, size: float = MARK_SIZE) -> str:
    """One outcome mark centred on (x, y), its title shown on hover."""
    name = outcome if outcome in MARKS else "running"
    h = size / 2
    return (f'<use class="mark {name}" href="#mk-{name}" x="{x - h:.1f}" y="{y - h:.1f}" width="{size}" '
            f'height="{size}"><title>{esc(title)}</title></use>')


def legend() -> str:
    items = "".join(f'<span class="legend-item"><svg viewBox="0 0 12 12" width="14" height="14" aria-hidden="true">'
                    f'{mark(name, 6, 6, label, 12)}</svg>{esc(label)}</span>'
                    for name, (_, label) in MARKS.items())
    return f'<div class="legend">{items}</div>'


def nice_ticks(lo: float, hi: float, n: int = 4) -> list[float]:
    """About n round values covering [lo, hi] (1, 2, 2.5 or 5 times a power of ten apart)."""
    if hi <= lo:
        return [lo]
    raw = (hi - lo) / n
    power = 10 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 2.5, 5, 10) if m * power >= raw)
    first = math.ceil(lo / step) * step
    return [first + i * step for i in range(int((hi - first) / step + 1e-9) + 1)]


_TIME_STEPS = [60, 300, 900, 3600, 3 * 3600, 6 * 3600, 12 * 3600, 86400, 2 * 86400, 7 * 86400, 14 * 86400,
               30 * 86400, 91 * 86400, 365 * 86400]


def time_ticks(t0: float, t1: float, n: int = 5) -> list[float]:
    """Round UTC times (minutes, hours, days, weeks) about (t1 - t0) / n apart."""
    step = next((s for s in _TIME_STEPS if s >= (t1 - t0) / n), _TIME_STEPS[-1])
    first = math.ceil(t0 / step) * step
    return [first + i * step for i in range(int((t1 - first) // step) + 1)]


def time_label(t: float, span: float) -> str:
    dt = datetime.fromtimestamp(t, UTC)
    if span <= 2 * 86400:
        return dt.strftime("%H:%M")
    return dt.strftime("%b %d") if span <= 300 * 86400 else dt.strftime("%Y-%m")


@dataclass
class Point:
    t: float  # seconds since the epoch
    value: float | None  # None: drawn on the baseline (a run that stored nothing)
    outcome: str
    title: str  # shown on hover


@dataclass
class Frame:
    """Where a plot draws: the viewBox and the margins around the data area."""

    # Narrow enough that 12-unit text stays readable on a phone, wide enough for a 1280 px screen.
    width: int = 480
    height: int = 170
    left: int = 60
    right: int = 14
    top: int = 12
    bottom: int = 26

    def x(self, t: float, t0: float, t1: float) -> float:
        return self.left + (t - t0) / (t1 - t0) * (self.width - self.left - self.right)

    def y(self, v: float, top: float) -> float:
        return self.height - self.bottom - v / top * (self.height - self.top - self.bottom)


def _span(times: Sequence[float]) -> tuple[float, float]:
    t0, t1 = min(times), max(times)
    pad = max((t1 - t0) * 0.02, 1800.0)  # a lone point gets an hour around it
    return t0 - pad, t1 + pad


def time_plot(points: Sequence[Point], *, label: str, fmt: Callable[[float], str], line: bool = True,
              frame: Frame | None = None, css: str = "") -> str:
    """Values over time: a line through the successful points, every point marked by its outcome."""
    f = frame or Frame()
    if not points:
        return (f'<svg class="plot empty {esc(css)}" viewBox="0 0 {f.width} 40" role="img" aria-label="{esc(label)}">'
                f'<text x="{f.width / 2}" y="24" text-anchor="middle" class="note">no runs in the period</text></svg>')
    t0, t1 = _span([p.t for p in points])
    top = max([p.value or 0 for p in points] + [0])
    ticks = nice_ticks(0, top * 1.05 if top else 1, 4)
    top = max(ticks[-1], top) or 1
    out = [f'<svg class="plot {esc(css)}" viewBox="0 0 {f.width} {f.height}" role="img" aria-label="{esc(label)}">',
           f'<title>{esc(label)}</title>']
    for v in ticks:
        y = f.y(v, top)
        out.append(f'<line class="grid" x1="{f.left}" x2="{f.width - f.right}" y1="{y:.1f}" y2="{y:.1f}"/>'
                   f'<text class="axis" x="{f.left - 6}" y="{y + 4:.1f}" text-anchor="end">{esc(fmt(v))}</text>')
    for t in time_ticks(t0, t1):
        x = f.x(t, t0, t1)
        out.append(f'<line class="tick" x1="{x:.1f}" x2="{x:.1f}" y1="{f.height - f.bottom}" '
                   f'y2="{f.height - f.bottom + 4}"/><text class="axis" x="{x:.1f}" y="{f.height - 8}" '
                   f'text-anchor="middle">{esc(time_label(t, t1 - t0))}</text>')
    base = f.height - f.bottom
    out.append(f'<line class="axisline" x1="{f.left}" x2="{f.width - f.right}" y1="{base}" y2="{base}"/>')
    ordered = sorted(points, key=lambda p: p.t)
    if line:
        path = " ".join(f"{f.x(p.t, t0, t1):.1f},{f.y(p.value, top):.1f}" for p in ordered
                        if p.value is not None and p.outcome == "success")
        if path:
            out.append(f'<polyline class="series" points="{path}"/>')
    # Hundreds of successes would hide the few runs that went wrong: theirs are drawn smaller.
    small = MARK_SIZE * (0.55 if len(points) > 200 else 1)
    for p in ordered:
        y = f.y(p.value, top) if p.value is not None else base - MARK_SIZE / 2
        out.append(mark(p.outcome, f.x(p.t, t0, t1), y, p.title, small if p.outcome == "success" else MARK_SIZE))
    out.append("</svg>")
    return "".join(out)


@dataclass
class Event:
    """A moment on a timeline: a mark (an outcome) or a vertical rule (`rule` names its class)."""

    t: float
    label: str
    outcome: str | None = None
    rule: str | None = None


def timeline(events: Sequence[Event], *, label: str, frame: Frame | None = None) -> str:
    """Moments on one time axis: marks for runs and backups, rules for now and deadlines."""
    f = frame or Frame(width=480, height=64, left=10, right=10, top=8, bottom=22)
    events = [e for e in events if DRAWN[0] <= e.t <= DRAWN[1]]
    if not events:
        return (f'<svg class="plot empty timeline" viewBox="0 0 {f.width} 40" role="img" aria-label="{esc(label)}">'
                f'<text x="{f.width / 2}" y="24" text-anchor="middle" class="note">no time to draw</text></svg>')
    t0, t1 = _span([e.t for e in events])
    mid = (f.top + f.height - f.bottom) / 2
    out = [f'<svg class="plot timeline" viewBox="0 0 {f.width} {f.height}" role="img" aria-label="{esc(label)}">',
           f'<title>{esc(label)}</title>',
           f'<line class="axisline" x1="{f.left}" x2="{f.width - f.right}" y1="{mid}" y2="{mid}"/>']
    for t in time_ticks(t0, t1, 4):
        x = f.x(t, t0, t1)
        out.append(f'<text class="axis" x="{x:.1f}" y="{f.height - 6}" text-anchor="middle">'
                   f'{esc(time_label(t, t1 - t0))}</text>')
    for e in events:
        x = f.x(e.t, t0, t1)
        if e.rule:
            out.append(f'<line class="rule {esc(e.rule)}" x1="{x:.1f}" x2="{x:.1f}" y1="{f.top - 4}" '
                       f'y2="{f.height - f.bottom + 2}"><title>{esc(e.label)}</title></line>')
    for e in events:
        if e.outcome:
            out.append(mark(e.outcome, f.x(e.t, t0, t1), mid, e.label, 13))
    out.append("</svg>")
    return "".join(out)
