"""Pareto frontier of accuracy against mean completion tokens, across strategies and budgets.

Marginal gains are in accuracy points (percent) per 1k completion tokens per item.
"""

from __future__ import annotations

import itertools

import numpy as np
from pydantic import BaseModel, ConfigDict


class FrontierStep(BaseModel):
    """The gain from one frontier point to the next, with a 95% paired-bootstrap interval."""

    model_config = ConfigDict(frozen=True)

    from_strategy: str
    from_budget: int
    to_strategy: str
    to_budget: int
    extra_tokens: float
    gain_points: float
    gain_per_1k_tokens: float
    gain_per_1k_low: float
    gain_per_1k_high: float


def frontier_mask(accuracy: np.ndarray, cost: np.ndarray, candidates: np.ndarray) -> np.ndarray:
    """Which candidates no other candidate dominates (as cheap and as accurate, one strictly).

    Works on the last axis, so (resamples × configs) arrays give one frontier per resample.
    Equal points do not dominate each other; NaN points are never on the frontier.
    """
    acc_i, acc_j = accuracy[..., :, None], accuracy[..., None, :]
    cost_i, cost_j = cost[..., :, None], cost[..., None, :]
    dominated_by = (
        (cost_j <= cost_i) & (acc_j >= acc_i) & ((cost_j < cost_i) | (acc_j > acc_i))
    ) & candidates[..., None, :]
    valid = candidates & ~np.isnan(accuracy) & ~np.isnan(cost)
    return valid & ~dominated_by.any(axis=-1)


def frontier_order(accuracy: np.ndarray, cost: np.ndarray, candidates: np.ndarray) -> list[int]:
    """Config indices on the frontier, cheapest first; of equal points the first one is kept."""
    on_front = frontier_mask(accuracy, cost, candidates)
    order = [int(c) for c in np.lexsort((-accuracy, cost)) if on_front[c]]
    kept: list[int] = []
    for c in order:
        if kept and cost[c] == cost[kept[-1]] and accuracy[c] == accuracy[kept[-1]]:
            continue
        kept.append(c)
    return kept


def chord_gains(accuracy: np.ndarray, cost: np.ndarray) -> np.ndarray:
    """Gain from config i to config j, ``[..., i, j]``, in accuracy points per 1k tokens.

    NaN where j is not dearer than i.
    """
    extra_tokens = cost[..., None, :] - cost[..., :, None]
    extra_accuracy = accuracy[..., None, :] - accuracy[..., :, None]
    with np.errstate(invalid="ignore", divide="ignore"):
        gains = 100 * extra_accuracy / (extra_tokens / 1000)
    return np.where(extra_tokens > 0, gains, np.nan)


def frontier_steps(
    configs: list[tuple[str, int]],
    front: list[int],
    accuracy: np.ndarray,
    cost: np.ndarray,
    boot_accuracy: np.ndarray,
    boot_cost: np.ndarray,
    confidence: float = 0.95,
) -> list[FrontierStep]:
    """Marginal gain between consecutive frontier points, with bootstrap intervals."""
    tail = (1 - confidence) / 2 * 100
    steps = []
    for a, b in itertools.pairwise(front):
        extra = cost[b] - cost[a]
        gain = 100 * (accuracy[b] - accuracy[a]) / (extra / 1000)
        boot_extra = boot_cost[:, b] - boot_cost[:, a]
        with np.errstate(invalid="ignore", divide="ignore"):
            boot_gain = 100 * (boot_accuracy[:, b] - boot_accuracy[:, a]) / (boot_extra / 1000)
        # A resample where the dearer point became cheaper has no meaningful slope.
        boot_gain = boot_gain[np.isfinite(boot_gain) & (boot_extra > 0)]
        low, high = np.percentile(boot_gain, [tail, 100 - tail]) if boot_gain.size else (gain, gain)
        steps.append(
            FrontierStep(
                from_strategy=configs[a][0],
                from_budget=configs[a][1],
                to_strategy=configs[b][0],
                to_budget=configs[b][1],
                extra_tokens=float(extra),
                gain_points=float(100 * (accuracy[b] - accuracy[a])),
                gain_per_1k_tokens=float(gain),
                gain_per_1k_low=float(low),
                gain_per_1k_high=float(high),
            )
        )
    return steps
