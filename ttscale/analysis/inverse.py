"""Inverse scaling: does accuracy fall as realised thinking tokens grow?

Two paired tests per (slice, strategy), both one-sided toward a decline:
- exact McNemar between consecutive budgets (discordant items only, binomial with p = 1/2);
- with ≥ 3 budgets, a within-item permutation test of the slope of correctness on *realised*
  tokens (each item's correctness labels are shuffled across its own budgets, so item difficulty
  cancels; a stratified Cochran–Armitage trend test with realised tokens as scores).
P-values are Holm-adjusted over every test of the report, so the chance of any false alarm in a
report with no real decline is at most α.
"""

from __future__ import annotations

import numpy as np
from pydantic import BaseModel, ConfigDict
from scipy.stats import binom, norm

# Bound on resamples × items × budgets per block of the permutation test.
_PERMUTATION_BLOCK_ELEMENTS = 4_000_000
EXACT_PERMUTATION_MAX_ITEMS = 20_000
"""Above this many informative items the trend test uses the permutation distribution's normal
limit (``trend_decline_p``): the resampled one costs seconds per 100k items and, at that size,
gives the same p-value to within its own Monte Carlo error (tests/analysis)."""


class PairwiseDecline(BaseModel):
    """Exact one-sided McNemar test that the higher budget is less accurate than the lower."""

    model_config = ConfigDict(frozen=True)

    strategy: str
    lower_budget: int
    higher_budget: int
    items: int
    lost: int
    """Items right at the lower budget and wrong at the higher one."""
    gained: int
    """Items wrong at the lower budget and right at the higher one."""
    p_value: float
    p_holm: float = 1.0
    significant: bool = False


class TrendTest(BaseModel):
    """Permutation test of a negative slope of correctness on realised tokens."""

    model_config = ConfigDict(frozen=True)

    strategy: str
    budgets: list[int]
    items: int
    token_measure: str
    """``thinking_tokens`` or, when none were recorded, ``completion_tokens``."""
    slope_points_per_1k_tokens: float
    """Within-item least-squares slope, accuracy points per 1k realised tokens."""
    p_value: float
    p_holm: float = 1.0
    significant: bool = False


def mcnemar_decline_p(lost: np.ndarray, gained: np.ndarray) -> np.ndarray:
    """One-sided exact McNemar p-value, P(X ≥ lost) for X ~ Binomial(lost + gained, 1/2)."""
    lost = np.asarray(lost)
    discordant = lost + np.asarray(gained)
    return np.where(discordant > 0, binom.sf(lost - 1, discordant, 0.5), 1.0)


def paired_mcnemar(correct_lower: np.ndarray, correct_higher: np.ndarray) -> tuple[int, int, float]:
    """(lost, gained, one-sided p) for paired 0/1 outcomes of the same items."""
    lower = np.asarray(correct_lower, dtype=bool)
    higher = np.asarray(correct_higher, dtype=bool)
    lost = int((lower & ~higher).sum())
    gained = int((~lower & higher).sum())
    return lost, gained, float(mcnemar_decline_p(np.array(lost), np.array(gained)))


def within_item_slope(tokens: np.ndarray, correct: np.ndarray) -> float:
    """Least-squares slope of correctness on tokens after removing each item's mean (per token)."""
    centred = tokens - tokens.mean(axis=1, keepdims=True)
    spread = float((centred**2).sum())
    return float((centred * correct).sum()) / spread if spread > 0 else 0.0


def trend_decline_p(
    tokens: np.ndarray,
    correct: np.ndarray,
    resamples: int = 2000,
    seed: int = 0,
    exact_max_items: int = EXACT_PERMUTATION_MAX_ITEMS,
) -> float:
    """One-sided permutation p-value for a negative within-item slope (items × budgets arrays).

    Statistic: Σ_i Σ_j (t_ij − t̄_i)·c_ij. Under the null, each item's outcomes are exchangeable
    across its budgets. Items whose outcome never changes cannot move the statistic and are
    dropped before permuting. The p-value counts the observed arrangement, so it is never 0.

    With more than ``exact_max_items`` informative items, the p-value is the normal limit's
    instead: items are permuted independently, each item's term has mean 0 (its centred tokens sum
    to 0) and variance Σ_j a_ij² · Σ_j (c_ij − c̄_i)² / (k − 1) (a permutation moment), so the
    statistic's null is the sum of many independent bounded terms.
    """
    tokens = np.asarray(tokens, dtype=np.float64)
    correct = np.asarray(correct, dtype=np.float64)
    informative = correct.min(axis=1) != correct.max(axis=1)
    if not informative.any():
        return 1.0
    centred = tokens[informative] - tokens[informative].mean(axis=1, keepdims=True)
    outcomes = correct[informative]
    observed = float((centred * outcomes).sum())
    if len(outcomes) > exact_max_items:
        spread = outcomes - outcomes.mean(axis=1, keepdims=True)
        variance = float(
            ((centred**2).sum(axis=1) * (spread**2).sum(axis=1)).sum() / (outcomes.shape[1] - 1)
        )
        if variance <= 0:
            return 1.0  # no token varies within an item: every arrangement gives the observed 0
        return float(norm.cdf(observed / np.sqrt(variance)))
    rng = np.random.default_rng(seed)
    block = max(1, _PERMUTATION_BLOCK_ELEMENTS // outcomes.size)
    at_most_observed = 0
    for first in range(0, resamples, block):
        size = min(block, resamples - first)
        shuffled = rng.permuted(np.broadcast_to(outcomes, (size, *outcomes.shape)), axis=2)
        statistics = np.einsum("rij,ij->r", shuffled, centred)
        # A small tolerance so float rounding never makes ties look like strict inequalities.
        at_most_observed += int((statistics <= observed + 1e-9 * abs(observed)).sum())
    return (1 + at_most_observed) / (1 + resamples)


def holm_adjust(p_values: list[float]) -> list[float]:
    """Holm step-down adjusted p-values (monotone, capped at 1), in the input order."""
    count = len(p_values)
    order = np.argsort(p_values, kind="stable")
    adjusted = np.empty(count)
    running = 0.0
    for rank, index in enumerate(order):
        running = max(running, min(1.0, (count - rank) * p_values[index]))
        adjusted[index] = running
    return adjusted.tolist()


def run_decline_tests(
    strategy: str,
    budgets: list[int],
    correct: np.ndarray,
    tokens: np.ndarray,
    token_measure: str = "thinking_tokens",
    resamples: int = 2000,
    seed: int = 0,
) -> tuple[list[PairwiseDecline], TrendTest | None]:
    """Unadjusted decline tests of one strategy: items × budgets arrays, budgets ascending.

    McNemar for each consecutive pair; the trend test only with three or more budgets.
    """
    correct = np.asarray(correct, dtype=np.float64)
    pairwise = []
    for k in range(len(budgets) - 1):
        lost, gained, p_value = paired_mcnemar(correct[:, k], correct[:, k + 1])
        pairwise.append(
            PairwiseDecline(
                strategy=strategy,
                lower_budget=budgets[k],
                higher_budget=budgets[k + 1],
                items=len(correct),
                lost=lost,
                gained=gained,
                p_value=p_value,
            )
        )
    if len(budgets) < 3:
        return pairwise, None
    trend = TrendTest(
        strategy=strategy,
        budgets=list(budgets),
        items=len(correct),
        token_measure=token_measure,
        slope_points_per_1k_tokens=100 * 1000 * within_item_slope(tokens, correct),
        p_value=trend_decline_p(tokens, correct, resamples, seed),
    )
    return pairwise, trend


def decline_cap(
    budgets: list[int],
    accuracies: list[float],
    pairwise: list[PairwiseDecline],
    trend: TrendTest | None,
) -> int | None:
    """The largest budget a recommendation may use, or None when no decline is significant.

    A significant pairwise drop caps at the lower budget of the first such pair; a significant
    trend alone caps at the most accurate budget (the decline lies beyond the peak).
    """
    drops = [test.lower_budget for test in pairwise if test.significant]
    if drops:
        return min(drops)
    if trend is not None and trend.significant:
        return budgets[int(np.argmax(accuracies))]
    return None
