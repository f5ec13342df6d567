"""Budget cutoffs: where more tokens stop paying, and where accuracy − λ·cost peaks.

Both rules pick among candidate configs only; the caller removes configs past a significant
decline (``ttscale.analysis.inverse``), so a recommendation never lands past one.
"""

from __future__ import annotations

from collections import Counter
from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict

from ttscale.analysis.frontier import chord_gains, frontier_mask, frontier_order

# Bound on resamples × configs² booleans per block of the vectorised replicate rule.
_RULE_BLOCK_ELEMENTS = 8_000_000


class BudgetShare(BaseModel):
    """How often a config was the recommendation across bootstrap resamples."""

    model_config = ConfigDict(frozen=True)

    strategy: str
    budget: int
    share: float


class Recommendation(BaseModel):
    """A recommended (strategy, budget) for one slice, and how stable that choice is."""

    model_config = ConfigDict(frozen=True)

    rule: Literal["marginal_gain", "utility"]
    strategy: str
    budget: int
    accuracy: float
    mean_completion_tokens: float
    usd_per_item: float | None = None
    threshold: float
    """τ (points per 1k tokens) for the marginal-gain rule; λ (points per 1k tokens) for utility."""
    plateau_reached: bool = True
    """False when gains were still above τ at the dearest measured point: try larger budgets."""
    capped_by_decline: bool = False
    """True when a significant decline removed dearer configs of some strategy."""
    distribution: list[BudgetShare] = []
    """The same rule (on point estimates) applied to each bootstrap resample."""


def marginal_gain_choice(
    accuracy: np.ndarray,
    cost: np.ndarray,
    boot_accuracy: np.ndarray,
    boot_cost: np.ndarray,
    candidates: np.ndarray,
    tau: float,
    confidence: float = 0.95,
) -> tuple[int, bool]:
    """The cheapest frontier point from which no dearer frontier point gains ≥ τ per 1k tokens.

    "Gains" uses the upper end of the bootstrap interval of the chord slope to every dearer
    frontier point (not only the next one, so a later steep stretch still counts). Returns the
    config index and whether a plateau was reached before the dearest frontier point.
    """
    front = frontier_order(accuracy, cost, candidates)
    upper_pct = 100 - (1 - confidence) / 2 * 100
    for position, i in enumerate(front):
        later = front[position + 1 :]
        if not later:
            # Walking to the dearest point means every cheaper one still had a paying step.
            return i, len(front) == 1
        boot = chord_gains(boot_accuracy[:, [i, *later]], boot_cost[:, [i, *later]])[:, 0, 1:]
        upper = np.array(
            [
                np.percentile(column[np.isfinite(column)], upper_pct)
                if np.isfinite(column).any()
                else np.inf
                for column in boot.T
            ]
        )
        if (upper < tau).all():
            return i, True
    raise AssertionError("unreachable: the dearest frontier point always qualifies")


def utility_choice(
    accuracy: np.ndarray, cost: np.ndarray, candidates: np.ndarray, lambda_per_1k: float
) -> np.ndarray:
    """Argmax over candidates of 100·accuracy − λ·tokens/1000, along the last axis.

    Ties go to the first config in order. Rows with no finite candidate give -1.
    """
    utility = 100 * accuracy - lambda_per_1k * cost / 1000
    utility = np.where(candidates & np.isfinite(utility), utility, -np.inf)
    choice = np.argmax(utility, axis=-1)
    return np.where(np.isfinite(utility.max(axis=-1)), choice, -1)


def replicate_marginal_gain_choices(
    boot_accuracy: np.ndarray, boot_cost: np.ndarray, candidates: np.ndarray, tau: float
) -> np.ndarray:
    """The marginal-gain rule on each resample's point estimates (no intervals); -1 if none."""
    resamples, n_configs = boot_accuracy.shape
    choices = np.empty(resamples, dtype=np.int64)
    block = max(1, _RULE_BLOCK_ELEMENTS // max(n_configs * n_configs, 1))
    for first in range(0, resamples, block):
        acc = boot_accuracy[first : first + block]
        cost = boot_cost[first : first + block]
        on_front = frontier_mask(acc, cost, np.broadcast_to(candidates, acc.shape))
        gains = chord_gains(acc, cost)
        blocked = (on_front[:, None, :] & (gains >= tau)).any(axis=-1)
        eligible = on_front & ~blocked
        ranked_cost = np.where(eligible, cost, np.inf)
        choice = np.argmin(ranked_cost, axis=-1)
        choices[first : first + block] = np.where(np.isfinite(ranked_cost.min(axis=-1)), choice, -1)
    return choices


def choice_distribution(choices: np.ndarray, configs: list[tuple[str, int]]) -> list[BudgetShare]:
    """Share of resamples choosing each config, most frequent first."""
    valid = choices[choices >= 0]
    if valid.size == 0:
        return []
    counts = Counter(int(c) for c in valid)
    return [
        BudgetShare(strategy=configs[c][0], budget=configs[c][1], share=n / valid.size)
        for c, n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
    ]
