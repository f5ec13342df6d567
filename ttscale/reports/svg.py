"""Hand-written inline SVG charts for the HTML report (no external libraries, works offline).

Every text and attribute value is HTML-escaped here; ``data-tip`` holds the hover tooltip text.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from html import escape

PALETTE = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#17becf", "#8c564b", "#e377c2")
WIDTH, HEIGHT = 640, 360
LEFT, RIGHT, TOP, BOTTOM = 60, 150, 20, 45


@dataclass
class Series:
    """One line of points with optional error bars; ``tips`` are shown on hover."""

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
    """A ringed point (a recommendation), labelled in its tooltip."""

    x: float
    y: float
    tip: str
    color: str = "#000"


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
    ticks = []
    exponent = math.floor(math.log2(max(low, 1e-9)))
    while 2**exponent <= high * 1.0001:
        if 2**exponent >= low * 0.9999:
            ticks.append(float(2**exponent))
        exponent += 1
    # Long ranges get every other power of two so labels do not collide.
    return ticks[::2] if len(ticks) > 8 else ticks


def _fmt(value: float) -> str:
    if value >= 10_000:
        return f"{value / 1000:.0f}k"
    if value >= 1000:
        return f"{value / 1000:.1f}k"
    return f"{value:g}"


def line_chart(
    title: str,
    x_label: str,
    y_label: str,
    series: Sequence[Series],
    highlights: Sequence[Highlight] = (),
) -> str:
    """An SVG chart: log₂ x axis, accuracy (0–100%) y axis, a legend on the right."""
    xs = [v for s in series for v in (s.x_low or s.x) + (s.x_high or s.x) if v > 0]
    xs = xs or [1.0, 2.0]
    x_scale = _LogScale(min(xs) / 1.15, max(xs) * 1.15, LEFT, WIDTH - RIGHT)

    def y_pos(value: float) -> float:
        return TOP + (1 - value) * (HEIGHT - TOP - BOTTOM)

    parts = [
        f'<svg class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" width="{WIDTH}" height="{HEIGHT}" '
        f'role="img" aria-label="{escape(title)}" xmlns="http://www.w3.org/2000/svg">',
        f"<title>{escape(title)}</title>",
        f'<rect x="{LEFT}" y="{TOP}" width="{WIDTH - LEFT - RIGHT}" '
        f'height="{HEIGHT - TOP - BOTTOM}" fill="#fafafa" stroke="#ccc"/>',
    ]
    for tick in (0.0, 0.25, 0.5, 0.75, 1.0):
        y = y_pos(tick)
        parts.append(
            f'<line x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{y:.1f}" y2="{y:.1f}" stroke="#e5e5e5"/>'
            f'<text x="{LEFT - 6}" y="{y + 4:.1f}" text-anchor="end" class="tick">'
            f"{tick:.0%}</text>"
        )
    for tick in _ticks_log(min(xs) / 1.15, max(xs) * 1.15):
        x = x_scale(tick)
        parts.append(
            f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{TOP}" y2="{HEIGHT - BOTTOM}" stroke="#eee"/>'
            f'<text x="{x:.1f}" y="{HEIGHT - BOTTOM + 16}" text-anchor="middle" class="tick">'
            f"{escape(_fmt(tick))}</text>"
        )
    parts.append(
        f'<text x="{(LEFT + WIDTH - RIGHT) / 2}" y="{HEIGHT - 6}" text-anchor="middle" '
        f'class="axis">{escape(x_label)}</text>'
        f'<text transform="translate(14 {(TOP + HEIGHT - BOTTOM) / 2}) rotate(-90)" '
        f'text-anchor="middle" class="axis">{escape(y_label)}</text>'
    )
    for index, s in enumerate(series):
        color = s.color or PALETTE[index % len(PALETTE)]
        points = [(x_scale(x), y_pos(y)) for x, y in zip(s.x, s.y, strict=True) if x > 0]
        dash = ' stroke-dasharray="5 4"' if s.dashed else ""
        if len(points) > 1:
            path = " ".join(f"{x:.1f},{y:.1f}" for x, y in points)
            parts.append(
                f'<polyline points="{path}" fill="none" stroke="{color}" stroke-width="1.6"{dash}/>'
            )
        for k, (x, y) in enumerate(points):
            if s.y_low is not None and s.y_high is not None:
                parts.append(
                    f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{y_pos(s.y_low[k]):.1f}" '
                    f'y2="{y_pos(s.y_high[k]):.1f}" stroke="{color}" stroke-opacity="0.55"/>'
                )
            if s.x_low is not None and s.x_high is not None:
                parts.append(
                    f'<line x1="{x_scale(s.x_low[k]):.1f}" x2="{x_scale(s.x_high[k]):.1f}" '
                    f'y1="{y:.1f}" y2="{y:.1f}" stroke="{color}" stroke-opacity="0.55"/>'
                )
            if s.markers:
                tip = escape(s.tips[k]) if k < len(s.tips) else ""
                parts.append(
                    f'<circle class="point" cx="{x:.1f}" cy="{y:.1f}" r="4" fill="{color}" '
                    f'data-tip="{tip}"/>'
                )
        legend_y = TOP + 14 + 18 * index
        parts.append(
            f'<line x1="{WIDTH - RIGHT + 10}" x2="{WIDTH - RIGHT + 28}" y1="{legend_y - 4}" '
            f'y2="{legend_y - 4}" stroke="{color}" stroke-width="2"{dash}/>'
            f'<text x="{WIDTH - RIGHT + 32}" y="{legend_y}" class="legend">{escape(s.name)}</text>'
        )
    for h in highlights:
        parts.append(
            f'<circle class="highlight" cx="{x_scale(h.x):.1f}" cy="{y_pos(h.y):.1f}" r="9" '
            f'fill="none" stroke="{h.color}" stroke-width="2" data-tip="{escape(h.tip)}"/>'
        )
    parts.append("</svg>")
    return "".join(parts)


def share_bars(rows: Sequence[tuple[str, float]]) -> str:
    """A horizontal bar per label, widths proportional to shares (0–1), as an SVG."""
    height = 18 * len(rows) + 4
    parts = [
        f'<svg class="chart bars" viewBox="0 0 420 {height}" width="420" height="{height}" '
        f'xmlns="http://www.w3.org/2000/svg">'
    ]
    for k, (label, share) in enumerate(rows):
        y = 2 + 18 * k
        tip = escape(f"{label}: {share:.1%} of bootstrap resamples")
        parts.append(
            f'<text x="150" y="{y + 12}" text-anchor="end" class="legend">{escape(label)}</text>'
            f'<rect x="156" y="{y + 2}" width="{max(1.0, 220 * share):.1f}" height="13" '
            f'fill="#1f77b4" data-tip="{tip}"/>'
            f'<text x="{160 + 220 * share:.1f}" y="{y + 12}" class="legend">{share:.0%}</text>'
        )
    parts.append("</svg>")
    return "".join(parts)
