"""Table contents shared by the HTML and Markdown renderings; each passes its own escaping."""

from __future__ import annotations

from collections.abc import Callable

from ttscale.analysis.saturation import SaturationFit
from ttscale.reports.model import SliceReport, TokenTotals

Escape = Callable[[object], str]

FRONTIER_HEADER = ["from", "to", "Δ tokens", "Δ accuracy (pts)", "pts per 1k tok", "95% CI"]
SATURATION_HEADER = ["strategy", "unit of N", "F_max", "p", "ε", "N*", "deviance"]


def sweep_saving_text(totals: TokenTotals) -> str | None:
    """One line on what sharing samples between units saved, or None when not measured."""
    saving = totals.sweep_saving
    if saving is None:
        return None
    return (
        f"{totals.completion_tokens:,} completion tokens attributed to units, "
        f"{totals.generated_tokens:,} generated: {saving:.2f}× "
        "(samples shared between units are generated once)"
    )


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


SATURATION_NOTE = (
    "N* is shown only where the fit means something (0 < p < 1 over at least three budgets); an "
    "N* beyond the largest budget is extrapolated, and past {limit:g}× that budget it is only "
    "bounded."
)


def meaningful_fit(fit: SaturationFit) -> bool:
    """A fit whose N* is a claim: 0 < p < 1 (p = 1 is a step at the first budget) on ≥ 3 budgets."""
    return 0 < fit.p < 0.999 and len(fit.budgets) >= 3


def n_star_text(fit: SaturationFit, limit: float) -> str:
    """N*, flagged when extrapolated and bounded at ``limit`` × the largest budget tried."""
    largest = max(fit.budgets)
    if not fit.extrapolated:
        return f"{fit.saturation_point:g}"
    bound = limit * largest
    if fit.saturation_point > bound:
        return f"> {bound:g} (extrapolated past {limit:g}× the largest budget {largest})"
    return f"{fit.saturation_point:g} (extrapolated beyond {largest})"


def saturation_rows(s: SliceReport, text: Escape, limit: float) -> list[list[str]]:
    """One row per fitted TTSPM curve whose N* is a claim (``meaningful_fit``)."""
    return [
        [
            text(f.strategy),
            text(f.unit),
            pct(f.f_max),
            f"{f.p:.4f}",
            f"{f.epsilon:g}",
            n_star_text(f, limit),
            f"{f.deviance:.2f}",
        ]
        for f in s.saturation
        if meaningful_fit(f)
    ]
