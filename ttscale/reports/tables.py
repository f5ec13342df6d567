"""Table contents shared by the HTML and Markdown renderings; each passes its own escaping."""

from __future__ import annotations

from collections.abc import Callable

from ttscale.reports.model import SliceReport

Escape = Callable[[object], str]

FRONTIER_HEADER = ["from", "to", "Δ tokens", "Δ accuracy (pts)", "pts per 1k tok", "95% CI"]
SATURATION_HEADER = ["strategy", "unit of N", "F_max", "p", "ε", "N*", "deviance"]


def pct(value: float) -> str:
    return f"{100 * value:.1f}%"


def frontier_rows(s: SliceReport, text: Escape, at: str) -> list[list[str]]:
    """One row per step along the frontier; ``at`` joins strategy and budget."""
    return [
        [
            f"{text(f.from_strategy)}{at}{f.from_budget}",
            f"{text(f.to_strategy)}{at}{f.to_budget}",
            f"{f.extra_tokens:.0f}",
            f"{f.gain_points:.1f}",
            f"{f.gain_per_1k_tokens:.2f}",
            f"{f.gain_per_1k_low:.2f} – {f.gain_per_1k_high:.2f}",
        ]
        for f in s.frontier
    ]


def saturation_rows(s: SliceReport, text: Escape) -> list[list[str]]:
    """One row per fitted TTSPM curve."""
    return [
        [
            text(f.strategy),
            text(f.unit),
            pct(f.f_max),
            f"{f.p:.4f}",
            f"{f.epsilon:g}",
            f"{f.saturation_point:g}" + (" (extrapolated)" if f.extrapolated else ""),
            f"{f.deviance:.2f}",
        ]
        for f in s.saturation
    ]
