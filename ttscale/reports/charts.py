"""The report's charts as SVG strings: cost–accuracy per slice, accuracy per budget, the overlay.

Shared by the single-run HTML report (``html.py``) and the comparison (``compare_render.py``);
the drawing itself is ``svg.line_chart``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ttscale.analysis.curves import CurvePoint
from ttscale.analysis.recommend import Recommendation
from ttscale.analysis.saturation import strategy_unit
from ttscale.reports.model import SliceReport, strategy_label
from ttscale.reports.svg import PALETTE, Highlight, Series, line_chart
from ttscale.reports.tables import pct

TOKENS_AXIS = "completion tokens per item (log₂ scale)"
ACCURACY_AXIS = "accuracy (%, 95% CI shaded)"
RULE_COLORS = {"marginal_gain": "#000", "utility": "#ff7f0e"}
RULE_RADII = {"marginal_gain": 10.0, "utility": 14.0}


def budget_axis(strategy: str) -> str:
    """The budget axis' label in the budget's own units ("thinking tokens", "samples")."""
    _, scale, name = strategy_unit(strategy)
    unit = name.removeprefix("1k ") if scale == 1000 else name
    return f"budget, {unit} (log₂ scale: each step doubles)"


def curve_series(
    name: str, points: Sequence[CurvePoint], color: str, dashed: bool = False
) -> Series:
    """Accuracy against mean completion tokens, with both intervals and a tooltip per point."""
    return Series(
        name=name,
        x=[p.mean_completion_tokens for p in points],
        y=[p.accuracy for p in points],
        y_low=[p.accuracy_low for p in points],
        y_high=[p.accuracy_high for p in points],
        x_low=[p.completion_tokens_low for p in points],
        x_high=[p.completion_tokens_high for p in points],
        tips=[
            f"{name} @ {p.budget}\naccuracy {pct(p.accuracy)} "
            f"[{pct(p.accuracy_low)}, {pct(p.accuracy_high)}]\n"
            f"{p.mean_completion_tokens:.0f} completion tok/item, "
            f"{p.mean_prompt_tokens:.0f} prompt tok/item"
            for p in points
        ],
        color=color,
        dashed=dashed,
    )


def recommendation_highlight(
    r: Recommendation, prefix: str = "", color: str | None = None, x: float | None = None
) -> Highlight:
    """A ring on a recommended point (x: its tokens per item unless given), named in the legend."""
    rule = "marginal gain" if r.rule == "marginal_gain" else "utility"
    return Highlight(
        x=r.mean_completion_tokens if x is None else x,
        y=r.accuracy,
        tip=f"{prefix}recommended ({rule}): {r.strategy} @ {r.budget}",
        color=color or RULE_COLORS[r.rule],
        legend=f"{prefix}recommended ({rule} rule)",
        radius=RULE_RADII[r.rule],
    )


def cost_chart(
    s: SliceReport, strategies: list[str], recommended_default: str | None = None
) -> str:
    """One slice: a line per strategy, the Pareto frontier dashed, recommendations ringed; the
    recommended adaptive default's line is named so in the legend."""
    series = [
        curve_series(
            strategy_label(strategy, recommended_default),
            [p for p in s.curves if p.strategy == strategy],
            PALETTE[i % 8],
        )
        for i, strategy in enumerate(strategies)
    ]
    lookup = {(p.strategy, p.budget): p for p in s.curves}
    front = [lookup[(st, b)] for st, b in s.frontier_configs if (st, b) in lookup]
    if len(front) > 1:
        series.append(
            Series(
                name="Pareto frontier",
                x=[p.mean_completion_tokens for p in front],
                y=[p.accuracy for p in front],
                dashed=True,
                markers=False,
                color="#888",
            )
        )
    return line_chart(
        f"Accuracy vs cost — {s.dataset} / {s.language}",
        TOKENS_AXIS,
        ACCURACY_AXIS,
        series,
        [recommendation_highlight(r) for r in s.recommendations],
    )


def budget_chart(s: SliceReport, strategy: str, color: str) -> str:
    """One strategy in one slice: accuracy per budget, with its TTSPM fit when there is one."""
    points = [p for p in s.curves if p.strategy == strategy]
    series = [
        Series(
            name=strategy,
            x=[float(p.budget) for p in points],
            y=[p.accuracy for p in points],
            y_low=[p.accuracy_low for p in points],
            y_high=[p.accuracy_high for p in points],
            tips=[f"budget {p.budget}: {pct(p.accuracy)}" for p in points],
            color=color,
        )
    ]
    fit = next((f for f in s.saturation if f.strategy == strategy), None)
    if fit is not None:
        _, scale, _ = strategy_unit(strategy)
        budgets = np.geomspace(min(fit.budgets), max(fit.budgets), 40)
        fitted = fit.f_max * (1 - (1 - fit.p) ** (budgets / scale))
        series.append(
            Series(
                name="TTSPM fit",
                x=budgets.tolist(),
                y=fitted.tolist(),
                dashed=True,
                markers=False,
                color="#555",
            )
        )
    highlights = [
        recommendation_highlight(r, x=float(r.budget))
        for r in s.recommendations
        if r.strategy == strategy
    ]
    return line_chart(
        f"{strategy}: accuracy vs budget — {s.dataset} / {s.language}",
        budget_axis(strategy),
        ACCURACY_AXIS,
        series,
        highlights,
    )
