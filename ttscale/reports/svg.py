"""Hand-written inline SVG charts for the HTML reports (no external libraries, works offline).

Charts are responsive: a ``viewBox`` and ``width="100%"``, so they shrink to a phone's width and
grow to a column's; text sizes are in viewBox units chosen to stay legible (≥ 10 px) at 375 px.
The legend sits under the plot, one line per series, so long names never squeeze the plot.
Every text and attribute value is HTML-escaped here; ``data-tip`` holds the hover tooltip text.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from html import escape

PALETTE = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#17becf", "#8c564b", "#e377c2")
WIDTH = 480
"""viewBox width: on a 375 px phone the chart is ~350 px wide, so 14-unit text is ~10 px."""
LEFT, RIGHT, TOP = 58, 14, 12
PLOT_HEIGHT = 250
LEGEND_ROW = 22


@dataclass
class Series:
    """One line of points with an optional shaded CI band; ``tips`` are shown on hover."""

    name: str
    x: list[float]
    y: list[float]
    y_low: list[float] | None = None
    y_high: list[float] | None = None
    x_low: list[float] | None = None
    x_high: list[float] | None = None
    tips: list[str] = field(default_factory=list)
    dashed: bool = False
    markers: bool = True
    color: str | None = None


@dataclass
class Highlight:
    """A ringed point (a recommendation), labelled in its tooltip and in the legend."""

    x: float
    y: float
    tip: str
    color: str = "#000"
    legend: str = "recommended"
    radius: float = 10.0
    """Two rules choosing one point get two visible rings (``charts.RULE_RADII``)."""


class _LogScale:
    def __init__(self, low: float, high: float, start: float, stop: float) -> None:
        low = max(low, 1e-9)
        high = max(high, low * 1.0001)
        self.low, self.high = math.log(low), math.log(high)
        self.start, self.stop = start, stop

    def __call__(self, value: float) -> float:
        fraction = (math.log(max(value, 1e-9)) - self.low) / (self.high - self.low)
        return self.start + fraction * (self.stop - self.start)


def _ticks_log(low: float, high: float) -> list[float]:
    """Powers of two in [low, high]: each tick doubles the last (every other one on long ranges)."""
    ticks = []
    exponent = math.floor(math.log2(max(low, 1e-9)))
    while 2**exponent <= high * 1.0001:
        if 2**exponent >= low * 0.9999:
            ticks.append(float(2**exponent))
        exponent += 1
    return ticks[::2] if len(ticks) > 6 else ticks


def _fmt(value: float) -> str:
    if value >= 10_000:
        return f"{value / 1000:.0f}k"
    if value >= 1000:
        return f"{value / 1000:.1f}k"
    return f"{value:g}"


def _band(points: list[tuple[float, float, float]], color: str) -> str:
    """A shaded polygon through (x, y_low, y_high) points; a bar when there is one point."""
    if len(points) == 1:
        x, low, high = points[0]
        return (
            f'<rect class="ci" x="{x - 3:.1f}" y="{high:.1f}" width="6" '
            f'height="{max(low - high, 0.5):.1f}" fill="{color}" fill-opacity="0.18"/>'
        )
    upper = [f"{x:.1f},{high:.1f}" for x, _, high in points]
    lower = [f"{x:.1f},{low:.1f}" for x, low, _ in reversed(points)]
    return (
        f'<polygon class="ci" points="{" ".join(upper + lower)}" fill="{color}" '
        f'fill-opacity="0.15" stroke="none"/>'
    )


def line_chart(
    title: str,
    x_label: str,
    y_label: str,
    series: Sequence[Series],
    highlights: Sequence[Highlight] = (),
) -> str:
    """An SVG chart: log₂ x axis, accuracy (0–100%) y axis, shaded CIs, a legend underneath."""
    xs = [v for s in series for v in (s.x_low or s.x) + (s.x_high or s.x) if v > 0]
    xs = xs or [1.0, 2.0]
    x_scale = _LogScale(min(xs) / 1.15, max(xs) * 1.15, LEFT, WIDTH - RIGHT)
    bottom = TOP + PLOT_HEIGHT
    legend_items = [
        (s.name, s.color or PALETTE[i % len(PALETTE)], s.dashed, False)
        for i, s in enumerate(series)
    ]
    for h in highlights:
        if (h.legend, h.color, False, True) not in legend_items:
            legend_items.append((h.legend, h.color, False, True))
    height = bottom + 62 + LEGEND_ROW * len(legend_items)

    def y_pos(value: float) -> float:
        return TOP + (1 - value) * PLOT_HEIGHT

    parts = [
        f'<svg class="chart" viewBox="0 0 {WIDTH} {height}" width="100%" '
        f'preserveAspectRatio="xMinYMin meet" role="img" aria-label="{escape(title)}" '
        'xmlns="http://www.w3.org/2000/svg">',
        f"<title>{escape(title)}</title>",
        f'<rect x="{LEFT}" y="{TOP}" width="{WIDTH - LEFT - RIGHT}" height="{PLOT_HEIGHT}" '
        'fill="#fafafa" stroke="#bbb"/>',
    ]
    for tick in (0.0, 0.25, 0.5, 0.75, 1.0):
        y = y_pos(tick)
        parts.append(
            f'<line x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{y:.1f}" y2="{y:.1f}" stroke="#e5e5e5"/>'
            f'<text x="{LEFT - 6}" y="{y + 5:.1f}" text-anchor="end" class="tick">'
            f"{tick:.0%}</text>"
        )
    for tick in _ticks_log(min(xs) / 1.15, max(xs) * 1.15):
        x = x_scale(tick)
        parts.append(
            f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{TOP}" y2="{bottom}" stroke="#eee"/>'
            f'<text x="{x:.1f}" y="{bottom + 19}" text-anchor="middle" class="tick">'
            f"{escape(_fmt(tick))}</text>"
        )
    parts.append(
        f'<text x="{(LEFT + WIDTH - RIGHT) / 2}" y="{bottom + 42}" text-anchor="middle" '
        f'class="axis">{escape(x_label)}</text>'
        f'<text transform="translate(16 {TOP + PLOT_HEIGHT / 2}) rotate(-90)" '
        f'text-anchor="middle" class="axis">{escape(y_label)}</text>'
    )
    for index, s in enumerate(series):
        color = s.color or PALETTE[index % len(PALETTE)]
        dash = ' stroke-dasharray="6 4"' if s.dashed else ""
        keep = [k for k, x in enumerate(s.x) if x > 0]
        points = [(x_scale(s.x[k]), y_pos(s.y[k])) for k in keep]
        if s.y_low is not None and s.y_high is not None and points:
            y_low, y_high = s.y_low, s.y_high
            band = [(x_scale(s.x[k]), y_pos(y_low[k]), y_pos(y_high[k])) for k in keep]
            parts.append(_band(band, color))
        if len(points) > 1:
            path = " ".join(f"{x:.1f},{y:.1f}" for x, y in points)
            parts.append(
                f'<polyline points="{path}" fill="none" stroke="{color}" stroke-width="2"{dash}/>'
            )
        for k, (x, y) in zip(keep, points, strict=True):
            if s.x_low is not None and s.x_high is not None:
                parts.append(
                    f'<line x1="{x_scale(s.x_low[k]):.1f}" x2="{x_scale(s.x_high[k]):.1f}" '
                    f'y1="{y:.1f}" y2="{y:.1f}" stroke="{color}" stroke-opacity="0.5"/>'
                )
            if s.markers:
                tip = escape(s.tips[k]) if k < len(s.tips) else ""
                parts.append(
                    f'<circle class="point" cx="{x:.1f}" cy="{y:.1f}" r="4.5" fill="{color}" '
                    f'data-tip="{tip}"/>'
                )
    for h in highlights:
        parts.append(
            f'<circle class="highlight" cx="{x_scale(h.x):.1f}" cy="{y_pos(h.y):.1f}" r="{h.radius:g}" '
            f'fill="none" stroke="{h.color}" stroke-width="2.5" data-tip="{escape(h.tip)}"/>'
        )
    for row, (name, color, dashed, ring) in enumerate(legend_items):
        y = bottom + 66 + LEGEND_ROW * row
        dash = ' stroke-dasharray="6 4"' if dashed else ""
        mark = (
            f'<circle cx="{LEFT + 9}" cy="{y - 5}" r="7" fill="none" stroke="{color}" '
            'stroke-width="2.5"/>'
            if ring
            else f'<line x1="{LEFT}" x2="{LEFT + 22}" y1="{y - 5}" y2="{y - 5}" stroke="{color}" '
            f'stroke-width="3"{dash}/>'
        )
        parts.append(f'{mark}<text x="{LEFT + 30}" y="{y}" class="legend">{escape(name)}</text>')
    parts.append("</svg>")
    return "".join(parts)


def share_bars(rows: Sequence[tuple[str, float]]) -> str:
    """A horizontal bar per label, widths proportional to shares (0–1), as a responsive SVG."""
    height = 22 * len(rows) + 4
    parts = [
        f'<svg class="chart bars" viewBox="0 0 420 {height}" width="100%" '
        'preserveAspectRatio="xMinYMin meet" xmlns="http://www.w3.org/2000/svg">'
    ]
    for k, (label, share) in enumerate(rows):
        y = 2 + 22 * k
        tip = escape(f"{label}: {share:.1%} of bootstrap resamples")
        parts.append(
            f'<text x="170" y="{y + 15}" text-anchor="end" class="legend">{escape(label)}</text>'
            f'<rect x="176" y="{y + 3}" width="{max(1.0, 190 * share):.1f}" height="16" '
            f'fill="#1f77b4" data-tip="{tip}"/>'
            f'<text x="{180 + 190 * share:.1f}" y="{y + 15}" class="legend">{share:.0%}</text>'
        )
    parts.append("</svg>")
    return "".join(parts)
