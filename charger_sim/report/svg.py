"""Inline SVG, written by hand: line charts with axes, and the stage bar (Gantt) over session time.

Everything returned is a string of SVG markup meant to sit inside an HTML page (no ``xmlns`` needed,
no external references); colours come from CSS classes the page defines (``report/style.py``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from html import escape

Point = tuple[float, float]


def e(text: object) -> str:
    return escape(str(text), quote=True)


def nice_step(span: float, target: int = 5) -> float:
    """A 1-2-5 step giving about ``target`` intervals over ``span``."""
    if span <= 0 or not math.isfinite(span):
        return 1.0
    raw = span / max(target, 1)
    mag = 10.0 ** math.floor(math.log10(raw))
    for m in (1.0, 2.0, 2.5, 5.0, 10.0):
        if raw <= m * mag + 1e-12:
            return m * mag
    return 10.0 * mag  # pragma: no cover - unreachable


def nice_range(lo: float, hi: float, target: int = 5) -> tuple[float, float, float]:
    """(low, high, step) rounded outwards to the step; a flat range is widened."""
    if not (math.isfinite(lo) and math.isfinite(hi)):
        lo, hi = 0.0, 1.0
    if hi - lo < 1e-9:
        pad = abs(hi) * 0.1 or 1.0
        lo, hi = lo - pad, hi + pad
    step = nice_step(hi - lo, target)
    return math.floor(lo / step + 1e-9) * step, math.ceil(hi / step - 1e-9) * step, step


def ticks(lo: float, hi: float, step: float) -> list[float]:
    n = round((hi - lo) / step)
    return [lo + i * step for i in range(n + 1)]


def tick_label(v: float, step: float) -> str:
    decimals = max(0, -math.floor(math.log10(step) + 1e-9)) if step < 1 else 0
    text = f"{v:.{decimals}f}"
    return "0" if text in ("-0", "-0.0", "-0.00") else text


def decimate(points: Sequence[Point], buckets: int = 300) -> list[Point]:
    """At most ~2 x ``buckets`` points keeping each bucket's minimum and maximum (spikes survive)."""
    if len(points) <= 2 * buckets:
        return list(points)
    out: list[Point] = [points[0]]
    size = (len(points) - 2) / buckets
    for b in range(buckets):
        chunk = points[1 + int(b * size) : 1 + int((b + 1) * size)]
        if not chunk:
            continue
        lo = min(chunk, key=lambda p: p[1])
        hi = max(chunk, key=lambda p: p[1])
        out.extend(sorted({lo, hi}, key=lambda p: p[0]))
    out.append(points[-1])
    return out


def simplify(points: Sequence[Point], tolerance: float = 0.35) -> list[Point]:
    """Ramer-Douglas-Peucker in drawing units: drop points within ``tolerance`` of the line (invisible)."""
    n = len(points)
    if n < 3:
        return list(points)
    keep = [False] * n
    keep[0] = keep[-1] = True
    stack = [(0, n - 1)]
    while stack:
        a, b = stack.pop()
        (xa, ya), (xb, yb) = points[a], points[b]
        dx, dy = xb - xa, yb - ya
        norm = math.hypot(dx, dy) or 1e-12
        worst, index = -1.0, -1
        for i in range(a + 1, b):
            x, y = points[i]
            d = abs(dy * (x - xa) - dx * (y - ya)) / norm
            if d > worst:
                worst, index = d, i
        if worst > tolerance:
            keep[index] = True
            stack.append((a, index))
            stack.append((index, b))
    return [p for p, k in zip(points, keep, strict=True) if k]


def time_axis(duration: float) -> tuple[float, str]:
    """(divisor, unit) for a time axis: seconds up to 3 min, minutes up to 3 h, then hours."""
    if duration <= 180:
        return 1.0, "s"
    if duration <= 3 * 3600:
        return 60.0, "min"
    return 3600.0, "h"


@dataclass(frozen=True, slots=True)
class Series:
    label: str
    points: Sequence[Point]  # (session time s, value)
    css: str  # stroke class s1..s6 (s2 and s6 are dashed: setpoints)


@dataclass(frozen=True, slots=True)
class Marker:
    time: float
    label: str
    css: str = "fault"  # "fault" (line) or "stop" (shaded from here to the end)


def _grid(moves: Sequence[str]) -> str:
    """Every grid line of a plot as one path."""
    return f'<path class="grid" d="{"".join(moves)}"/>'


def _labels(anchor: str, items: Sequence[tuple[float, float, str]]) -> str:
    """Tick labels sharing class and anchor in one group."""
    texts = "".join(f'<text x="{x:.1f}" y="{y:.1f}">{e(label)}</text>' for x, y, label in items)
    return f'<g class="tick" text-anchor="{anchor}">{texts}</g>'


DASHED = frozenset({"s2", "s6"})  # the style sheet draws these dashed (setpoints)
W, H = 560, 230
ML, MR, MT, MB = 58, 14, 30, 42


def line_chart(
    title: str,
    unit: str,
    series: Sequence[Series],
    *,
    duration: float,
    zero: bool = True,
    markers: Sequence[Marker] = (),
    buckets: int = 300,
) -> str:
    """A line chart of ``series`` against session time, with ticks, grid, labels, units and legend."""
    values = [v for s in series for _, v in s.points if math.isfinite(v)]
    lo_v = min(values, default=0.0)
    hi_v = max(values, default=1.0)
    if zero:
        lo_v, hi_v = min(lo_v, 0.0), max(hi_v, 0.0)
        if hi_v - lo_v < 1e-9:  # nothing flowed: 0..1 rather than an axis around zero
            hi_v = lo_v + 1.0
    y0, y1, ystep = nice_range(lo_v, hi_v)
    div, tunit = time_axis(duration)
    x1_units = max(duration / div, 1e-9)
    _, x1, xstep = nice_range(0.0, x1_units, 6)
    pw, ph = W - ML - MR, H - MT - MB

    def px(t: float) -> float:
        return ML + (t / div) / x1 * pw

    def py(v: float) -> float:
        return MT + ph - (v - y0) / (y1 - y0) * ph

    parts = [
        f'<svg class="chart" viewBox="0 0 {W} {H}" role="img" aria-label="{e(title)} ({e(unit)}) over time">',
        f'<text class="ctitle" x="{ML}" y="16">{e(title)} <tspan class="unit">({e(unit)})</tspan></text>',
    ]
    for m in markers:
        if m.css == "stop" and 0 <= m.time <= duration:
            x = px(m.time)
            parts.append(
                f'<rect class="stopzone" x="{x:.1f}" y="{MT}" width="{max(px(duration) - x, 0.5):.1f}" '
                f'height="{ph}"><title>{e(m.label)} at {m.time:.1f} s</title></rect>'
            )
    yt = [(py(v), tick_label(v, ystep)) for v in ticks(y0, y1, ystep)]
    xt = [(ML + v / x1 * pw, tick_label(v, xstep)) for v in ticks(0.0, x1, xstep)]
    parts.append(
        _grid([f"M{ML} {y:.1f}H{ML + pw}" for y, _ in yt] + [f"M{x:.1f} {MT}V{MT + ph}" for x, _ in xt])
    )
    parts.append(_labels("end", [(ML - 6, y + 4, label) for y, label in yt]))
    parts.append(_labels("middle", [(x, MT + ph + 16, label) for x, label in xt]))
    parts.append(f'<rect class="frame" x="{ML}" y="{MT}" width="{pw}" height="{ph}"/>')
    parts.append(
        f'<text class="axis" x="{ML + pw / 2:.1f}" y="{H - 6}" text-anchor="middle">'
        f"session time ({tunit})</text>"
    )
    parts.append(
        f'<text class="axis" transform="translate(14 {MT + ph / 2:.1f}) rotate(-90)" '
        f'text-anchor="middle">{e(unit)}</text>'
    )
    for m in markers:
        if m.css != "stop" and 0 <= m.time <= duration:
            x = px(m.time)
            parts.append(
                f'<line class="{e(m.css)}" x1="{x:.1f}" y1="{MT}" x2="{x:.1f}" y2="{MT + ph}">'
                f"<title>{e(m.label)} at {m.time:.1f} s</title></line>"
            )
    for s in sorted(series, key=lambda s: s.css in DASHED):  # setpoints on top
        pts = decimate([p for p in s.points if math.isfinite(p[1])], buckets)
        if not pts:
            continue
        drawn = simplify([(px(t), py(v)) for t, v in pts])
        coords = " ".join(f"{x:.1f},{y:.1f}" for x, y in drawn)
        parts.append(
            f'<polyline class="line {e(s.css)}" points="{coords}"><title>{e(s.label)}</title></polyline>'
        )
    lx = W - MR
    for s in reversed(series):  # legend, right-aligned on the title line
        width = 7 * len(s.label) + 26
        lx -= width
        parts.append(f'<line class="line {e(s.css)}" x1="{lx:.0f}" y1="12" x2="{lx + 18:.0f}" y2="12"/>')
        parts.append(f'<text class="legend" x="{lx + 22:.0f}" y="16">{e(s.label)}</text>')
    parts.append("</svg>")
    return "".join(parts)


@dataclass(frozen=True, slots=True)
class Bar:
    start: float
    end: float
    label: str  # the stage
    step: int
    note: str = ""  # tooltip detail


GW, LANE, GAP, GML, GMR = 1000, 30, 8, 74, 12


def gantt(
    lanes: Sequence[tuple[str, Sequence[Bar]]],
    *,
    start: float,
    end: float,
    title: str,
    markers: Sequence[Marker] = (),
) -> str:
    """Stage bars per lane (charger, vehicle) over [start, end] s, coloured by handshake step."""
    end = max(end, start + 1e-6)
    div, unit = time_axis(end - start)
    _, x1, xstep = nice_range(0.0, (end - start) / div, 8)
    pw = GW - GML - GMR
    top = 24
    height = top + len(lanes) * (LANE + GAP) + 30

    def px(t: float) -> float:
        return GML + ((t - start) / div) / x1 * pw

    parts = [
        f'<svg class="gantt" viewBox="0 0 {GW} {height}" role="img" aria-label="{e(title)}">',
        f'<text class="ctitle" x="{GML}" y="15">{e(title)}</text>',
    ]
    axis_y = top + len(lanes) * (LANE + GAP)
    xt = [(GML + v / x1 * pw, tick_label(v + start / div, xstep)) for v in ticks(0.0, x1, xstep)]
    parts.append(_grid([f"M{x:.1f} {top}V{axis_y}" for x, _ in xt]))
    parts.append(_labels("middle", [(x, axis_y + 14, label) for x, label in xt]))
    parts.append(
        f'<text class="axis" x="{GW - GMR}" y="{axis_y + 28}" text-anchor="end">session time ({unit})</text>'
    )
    for i, (name, bars) in enumerate(lanes):
        y = top + i * (LANE + GAP)
        parts.append(
            f'<text class="lane" x="{GML - 8}" y="{y + LANE / 2 + 4:.1f}" text-anchor="end">{e(name)}</text>'
        )
        for b in bars:
            if b.end < start or b.start > end:
                continue
            x0, xe = px(max(b.start, start)), px(min(b.end, end))
            w = max(xe - x0, 1.2)
            tip = f"{b.label} (step {b.step}) {b.start:.2f}–{b.end:.2f} s" + (f": {b.note}" if b.note else "")
            parts.append(
                f'<rect class="st{b.step if 1 <= b.step <= 7 else 0}" x="{x0:.1f}" y="{y}" '
                f'width="{w:.1f}" height="{LANE}" rx="3"><title>{e(tip)}</title></rect>'
            )
            if w > 7.2 * len(b.label) + 8:
                parts.append(
                    f'<text class="barlabel" x="{x0 + 5:.1f}" y="{y + LANE / 2 + 4:.1f}">{e(b.label)}</text>'
                )
    for m in markers:
        if start <= m.time <= end:
            x = px(m.time)
            parts.append(
                f'<line class="{e(m.css)}mark" x1="{x:.1f}" y1="{top - 4}" x2="{x:.1f}" '
                f'y2="{axis_y}"><title>{e(m.label)} at {m.time:.2f} s</title></line>'
            )
    parts.append("</svg>")
    return "".join(parts)


def bars_of(entries: Sequence[tuple[float, str, int, str]], end: float) -> list[Bar]:
    """Consecutive (time, stage, step, detail) entries of one side as bars up to ``end``."""
    out: list[Bar] = []
    for i, (t, stage, step, detail) in enumerate(entries):
        t_next = entries[i + 1][0] if i + 1 < len(entries) else max(end, t)
        out.append(Bar(t, t_next, stage, step, detail))
    return out
