"""The few rows a person reads first: results per strategy × budget, and the recommended cutoffs.

Plain strings, so the terminal (``ttscale run``, ``make demo``) and the Prefect artifact show the
same figures as the report itself.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

from ttscale.reports.model import Report, SliceReport
from ttscale.reports.tables import pct

RESULTS_HEADER = ["slice", "strategy", "budget", "items", "accuracy (95% CI)", "tokens/item"]
CUTOFF_HEADER = ["slice", "rule", "strategy", "budget", "accuracy", "tokens/item", "note"]


def _slice_name(dataset: str, language: str) -> str:
    return f"{dataset}/{language}"


def results_rows(report: Report) -> list[list[str]]:
    """One row per slice × strategy × budget, from the report's bootstrap curves."""
    return [
        [
            _slice_name(s.dataset, s.language),
            p.strategy,
            str(p.budget),
            str(p.items),
            f"{pct(p.accuracy)} ({pct(p.accuracy_low)}–{pct(p.accuracy_high)})",
            f"{p.mean_completion_tokens:,.0f}",
        ]
        for s in report.slices
        for p in sorted(s.curves, key=lambda p: (p.strategy, p.budget))
    ]


def cutoff_rows(report: Report) -> list[list[str]]:
    """One row per slice × recommendation rule; one saying why for a slice without any."""
    rows = []
    for s in report.slices:
        if s.withheld:
            name = _slice_name(s.dataset, s.language)
            rows.append([name, "–", "–", "–", "–", "–", f"{s.withheld}; needed: {s.needed}"])
        for r in s.recommendations:
            notes = []
            if not r.plateau_reached:
                notes.append("still gaining: try larger budgets")
            if r.capped_by_decline:
                notes.append("capped by a significant decline")
            rows.append([
                _slice_name(s.dataset, s.language), r.rule, r.strategy, str(r.budget),
                pct(r.accuracy), f"{r.mean_completion_tokens:,.0f}", "; ".join(notes),
            ])  # fmt: skip
    return rows


def markdown_table(header: list[str], rows: list[list[str]]) -> str:
    """A GitHub-style Markdown table (cells are ttscale's own figures and names)."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |" for row in rows]
    return "\n".join(lines)


class SliceHeadline(BaseModel):
    """What to set for one slice: the recommendation with its interval, cost and saving.

    ``strategy`` is None when the slice has no recommendation; ``withheld`` then says why.
    """

    model_config = ConfigDict(frozen=True)

    dataset: str
    language: str
    items: int
    strategy: str | None = None
    budget: int | None = None
    accuracy: float | None = None
    accuracy_low: float | None = None
    accuracy_high: float | None = None
    tokens_per_item: float | None = None
    usd_per_item: float | None = None
    largest_budget: int | None = None
    """The largest budget tried with the same strategy, the saving's reference."""
    largest_accuracy: float | None = None
    token_saving: float | None = None
    """Share of tokens per item saved against ``largest_budget`` (0 when it is the one)."""
    usd_saving_per_item: float | None = None
    withheld: str | None = None
    needed: str | None = None
    observed: str | None = None
    """With ``withheld``: the most accurate configuration measured (fewest tokens among ties),
    as a phrase, so a reader still sees what the run found; it is not a recommendation."""


def slice_headlines(report: Report) -> list[SliceHeadline]:
    """One headline per slice, from its marginal-gain recommendation (the report's primary rule)."""
    return [_slice_headline(s) for s in report.slices]


def _slice_headline(s: SliceReport) -> SliceHeadline:
    base = SliceHeadline(dataset=s.dataset, language=s.language, items=s.items)
    chosen = next((r for r in s.recommendations if r.rule == "marginal_gain"), None)
    if chosen is None:
        best = max(s.curves, key=lambda p: (p.accuracy, -p.mean_completion_tokens), default=None)
        observed = (
            None
            if best is None or best.accuracy == 0  # nothing right: no point is "best"
            else f"{best.strategy} at budget {best.budget}: accuracy {pct(best.accuracy)} "
            f"(95% CI {pct(best.accuracy_low)}–{pct(best.accuracy_high)}), "
            f"{best.mean_completion_tokens:,.0f} tokens/item"
        )
        return base.model_copy(
            update={
                "withheld": s.withheld or "no recommendation",
                "needed": s.needed,
                "observed": observed,
            }
        )
    point = next(p for p in s.curves if (p.strategy, p.budget) == (chosen.strategy, chosen.budget))
    largest = max((p for p in s.curves if p.strategy == chosen.strategy), key=lambda p: p.budget)
    saving = (
        1 - point.mean_completion_tokens / largest.mean_completion_tokens
        if largest.mean_completion_tokens
        else 0.0
    )
    usd_saving = (
        largest.usd_per_item - point.usd_per_item
        if point.usd_per_item is not None and largest.usd_per_item is not None
        else None
    )
    return base.model_copy(
        update={
            "strategy": point.strategy,
            "budget": point.budget,
            "accuracy": point.accuracy,
            "accuracy_low": point.accuracy_low,
            "accuracy_high": point.accuracy_high,
            "tokens_per_item": point.mean_completion_tokens,
            "usd_per_item": point.usd_per_item,
            "largest_budget": largest.budget,
            "largest_accuracy": largest.accuracy,
            "token_saving": saving,
            "usd_saving_per_item": usd_saving,
        }
    )


def headline_text(h: SliceHeadline) -> str:
    """One plain sentence (unescaped: each rendering escapes it)."""
    name = f"{_slice_name(h.dataset, h.language)} ({h.items} items)"
    if h.strategy is None or h.accuracy is None:
        seen = f" Best measured, not recommended: {h.observed}." if h.observed else ""
        return f"{name}: no recommendation, {h.withheld}.{seen} Needed: {h.needed}."
    money = "" if h.usd_per_item is None else f", ${h.usd_per_item:.6f}/item"
    text = (
        f"{name}: use {h.strategy} at budget {h.budget}: accuracy {pct(h.accuracy)} "
        f"(95% CI {pct(h.accuracy_low or 0)}–{pct(h.accuracy_high or 0)}), "
        f"{h.tokens_per_item or 0:,.0f} tokens/item{money}"
    )
    if h.budget == h.largest_budget:
        return text + "; this is the largest budget tried, so larger ones may still pay."
    usd = "" if h.usd_saving_per_item is None else f", ${h.usd_saving_per_item:.6f}/item"
    return (
        text + f"; saves {100 * (h.token_saving or 0):.0f}% of tokens{usd} against budget "
        f"{h.largest_budget} ({pct(h.largest_accuracy or 0)})."
    )
