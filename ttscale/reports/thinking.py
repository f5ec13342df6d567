"""Samples × thinking tokens per sample, for units that probed their thinking (``probe_stop``,
``confidence_stop``, and majority vote or Adaptive-Consistency with thinking stop on).

One row per slice (dataset, language), strategy and budget: so on MGSM the table reads per
language, where language forcing moves the point at which answers settle.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from pydantic import BaseModel


class ThinkingAxesRow(BaseModel):
    """Units of one slice, strategy and budget whose thinking was probed (answered units only)."""

    dataset: str
    language: str
    strategy: str
    budget: int
    items: int
    accuracy: float
    mean_samples: float
    """Samples the strategy used per item (1 for a single probed trace)."""
    mean_thinking_tokens_per_sample: float
    """Thinking tokens of the used samples ÷ samples: where a probed trace stopped thinking."""
    mean_probe_tokens_per_sample: float
    """Probe tokens (spent, not thinking) of the used samples ÷ samples."""
    mean_probes_per_sample: float


THINKING_AXES_HEADER = [
    "dataset",
    "language",
    "strategy",
    "budget",
    "items",
    "accuracy",
    "mean samples",
    "thinking tok / sample",
    "probe tok / sample",
    "probes / sample",
]

THINKING_AXES_NOTE = (
    "Thinking tokens per sample are where each probed trace stopped (probes agreed, confident, "
    "degenerate, the model's own end, or the cap); probe tokens are spent on top of them."
)


def thinking_axes_rows(
    rows: Sequence[ThinkingAxesRow], text: Callable[[object], str]
) -> list[list[str]]:
    """Table cells of ``rows``; ``text`` escapes names for the rendering at hand."""
    return [
        [
            text(r.dataset),
            text(r.language),
            text(r.strategy),
            str(r.budget),
            str(r.items),
            f"{100 * r.accuracy:.1f}%",
            f"{r.mean_samples:.2f}",
            f"{r.mean_thinking_tokens_per_sample:.1f}",
            f"{r.mean_probe_tokens_per_sample:.1f}",
            f"{r.mean_probes_per_sample:.2f}",
        ]
        for r in rows
    ]
