"""Synthetic runs with planted truths, for tests and benchmarks (never for reported figures).

Each item has a latent "solvable" flag (probability F_max) and a time to first success: the
number of samples until one is right (geometric, parallel strategies) or the thinking length it
needs (exponential in kilotokens, budget forcing). An item is right at budget N when it is
solvable and its time to success is ≤ N, so accuracy follows F(N) = F_max·(1 − (1 − p)^N)
exactly in expectation, and outcomes are paired and nested across budgets as in a real run.
A planted decline turns right answers wrong beyond a budget, at ``decline_rate`` per step.

This module draws the outcomes as numpy columns only; ``tests/synthetic_ledger.py`` writes them
into a ledger.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ttscale.analysis.saturation import strategy_unit


@dataclass(frozen=True)
class PlantedCurve:
    """The true accuracy curve of one strategy."""

    strategy: str
    budgets: tuple[int, ...]
    f_max: float
    p: float
    """Success probability per unit: per sample, per round, or per 1k thinking tokens."""
    decline_after: int | None = None
    """Budgets above this one lose right answers (None: no decline)."""
    decline_rate: float = 0.0
    """Chance per budget step past ``decline_after`` that a right answer turns wrong."""
    tokens_per_sample: float = 300.0
    """Mean completion tokens of one parallel sample (natural thinking length for forcing)."""


@dataclass(frozen=True)
class SyntheticLedgerSpec:
    """A whole synthetic run: slices × items × planted curves."""

    curves: tuple[PlantedCurve, ...]
    run_id: str = "synthetic"
    slices: tuple[tuple[str, str], ...] = (("synthetic", "en"),)
    items_per_slice: int = 200
    seed: int = 0
    question_template: str = "Synthetic question {index}: what is {index} + 1?"
    prompt_tokens: int = 80
    answer_tokens: int = 12
    metadata: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class PlantedOutcomes:
    """Items × budgets arrays of one curve: correctness, realised thinking and completion tokens."""

    correct: np.ndarray
    thinking_tokens: np.ndarray
    completion_tokens: np.ndarray
    sample_tokens: np.ndarray | None
    """Items × max-N completion tokens of each parallel sample (None for sequential)."""


def planted_outcomes(
    curve: PlantedCurve, n_items: int, rng: np.random.Generator, answer_tokens: int = 12
) -> PlantedOutcomes:
    """Draw paired outcomes and token counts of ``n_items`` items for one planted curve."""
    kind, scale, _ = strategy_unit(curve.strategy)
    budgets = np.asarray(curve.budgets, dtype=np.float64)
    solvable = rng.random(n_items) < curve.f_max
    if kind == "parallel":
        first_success = rng.geometric(curve.p, size=n_items).astype(np.float64)
    else:
        hazard = -np.log1p(-curve.p)
        first_success = rng.exponential(1 / hazard, size=n_items)
    correct = solvable[:, None] & (first_success[:, None] <= budgets[None, :] / scale)
    if curve.decline_after is not None:
        steps_past = np.maximum(
            0, np.arange(len(budgets)) - curve.budgets.index(curve.decline_after)
        )
        # Once an item is harmed it stays wrong at every larger budget (nested, like real runs).
        harmed_at = rng.geometric(curve.decline_rate, size=n_items) if curve.decline_rate else None
        if harmed_at is not None:
            correct &= steps_past[None, :] < harmed_at[:, None]
    mean_sample = curve.tokens_per_sample
    if kind == "parallel":
        max_samples = int(budgets.max())
        sample_tokens = np.maximum(
            answer_tokens + 1, rng.gamma(4.0, mean_sample / 4.0, size=(n_items, max_samples))
        ).astype(np.int64)
        cumulative = np.cumsum(sample_tokens, axis=1)
        completion = cumulative[:, budgets.astype(np.int64) - 1]
        thinking = completion - answer_tokens * budgets.astype(np.int64)[None, :]
        return PlantedOutcomes(correct, thinking, completion, sample_tokens)
    natural = rng.gamma(4.0, mean_sample / 4.0, size=n_items)
    thinking = np.minimum(natural[:, None], budgets[None, :]).astype(np.int64)
    return PlantedOutcomes(correct, thinking, thinking + answer_tokens, None)


def _columns(arrays: dict[str, list[np.ndarray]]) -> dict[str, np.ndarray]:
    return {name: np.concatenate(parts) for name, parts in arrays.items()}


def synthetic_tables(
    spec: SyntheticLedgerSpec,
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray], dict[str, np.ndarray]]:
    """(items, calls, decisions) as numeric numpy columns; strings are rebuilt in SQL.

    Items are numbered globally (``item_index``); strategies by position in ``spec.curves``.
    """
    rng = np.random.default_rng(spec.seed)
    items: dict[str, list[np.ndarray]] = {"item_index": [], "slice_index": []}
    call_names = ["item_index", "strategy_index", "budget", "sample_index", "call_index"]
    call_names += ["phase_code"]
    call_names += ["completion_tokens", "thinking_tokens", "answer_tokens"]
    calls: dict[str, list[np.ndarray]] = {name: [] for name in call_names}
    decision_names = ["item_index", "strategy_index", "budget", "correct", "samples_used", "calls"]
    decision_names += ["completion_tokens", "thinking_tokens", "answer_tokens"]
    decisions: dict[str, list[np.ndarray]] = {name: [] for name in decision_names}
    n = spec.items_per_slice
    for slice_index in range(len(spec.slices)):
        index = np.arange(slice_index * n, (slice_index + 1) * n)
        items["item_index"].append(index)
        items["slice_index"].append(np.full(n, slice_index))
        for strategy_index, curve in enumerate(spec.curves):
            outcome = planted_outcomes(curve, n, rng, spec.answer_tokens)
            for b, budget in enumerate(curve.budgets):
                samples = budget if outcome.sample_tokens is not None else 1
                n_calls = samples if outcome.sample_tokens is not None else 2
                decisions["item_index"].append(index)
                decisions["strategy_index"].append(np.full(n, strategy_index))
                decisions["budget"].append(np.full(n, budget))
                decisions["correct"].append(outcome.correct[:, b])
                decisions["samples_used"].append(np.full(n, samples))
                decisions["calls"].append(np.full(n, n_calls))
                decisions["completion_tokens"].append(outcome.completion_tokens[:, b])
                decisions["thinking_tokens"].append(outcome.thinking_tokens[:, b])
                decisions["answer_tokens"].append(
                    outcome.completion_tokens[:, b] - outcome.thinking_tokens[:, b]
                )
                if outcome.sample_tokens is not None:
                    completion = outcome.sample_tokens[:, :budget].ravel()
                    answer = np.full(completion.shape, spec.answer_tokens)
                    calls["sample_index"].append(np.tile(np.arange(budget), n))
                    calls["call_index"].append(np.zeros(completion.size, dtype=np.int64))
                    calls["phase_code"].append(np.zeros(completion.size, dtype=np.int64))
                    item_column = np.repeat(index, budget)
                else:
                    # Budget forcing: a thinking call, then an answer call after the delimiter.
                    thinking_only = outcome.thinking_tokens[:, b]
                    completion = np.column_stack([thinking_only, np.full(n, spec.answer_tokens)])
                    answer = np.column_stack([np.zeros(n), np.full(n, spec.answer_tokens)])
                    completion, answer = completion.ravel(), answer.ravel().astype(np.int64)
                    calls["sample_index"].append(np.zeros(2 * n, dtype=np.int64))
                    calls["call_index"].append(np.tile([0, 1], n))
                    calls["phase_code"].append(np.tile([1, 2], n))
                    item_column = np.repeat(index, 2)
                calls["item_index"].append(item_column)
                calls["strategy_index"].append(np.full(completion.size, strategy_index))
                calls["budget"].append(np.full(completion.size, budget))
                calls["completion_tokens"].append(completion)
                calls["answer_tokens"].append(answer)
                calls["thinking_tokens"].append(completion - answer)
    return _columns(items), _columns(calls), _columns(decisions)
