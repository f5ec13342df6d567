"""The few rows a person reads first: results per strategy × budget, and the recommended cutoffs.

Plain strings, so the terminal (``ttscale run``, ``make demo``) and the Prefect artifact show the
same figures as the report itself.
"""

from __future__ import annotations

from ttscale.reports.model import Report
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
