"""Accuracy and cost curves per dataset × language × strategy × budget, with paired bootstrap CIs.

Items are the clusters: every bootstrap resample draws items with replacement and keeps all of a
drawn item's (strategy, budget) outcomes together, so comparisons between budgets stay paired.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from pydantic import BaseModel, ConfigDict

# Cap on resamples × items held in one weight block (8 bytes each): bounds memory on big slices.
_WEIGHT_BLOCK_ELEMENTS = 4_000_000
EXACT_BOOTSTRAP_MAX_ITEMS = 20_000
"""Above this many items a slice's replicates come from the bootstrap's normal approximation
(``normal_bootstrap_means``): drawing resamples × items weights costs seconds per 100k items,
and at that size the two agree to a fraction of the interval's width (tests/analysis)."""


@dataclass(frozen=True)
class SliceData:
    """Outcomes of one (dataset, language) slice as item × config matrices (NaN: no decision)."""

    dataset: str
    language: str
    item_ids: list[str]
    configs: list[tuple[str, int]]
    correct: np.ndarray
    completion_tokens: np.ndarray
    prompt_tokens: np.ndarray
    thinking_tokens: np.ndarray

    @property
    def present(self) -> np.ndarray:
        return ~np.isnan(self.correct)


@dataclass(frozen=True)
class ItemOutcomes:
    """Every answered decision of a run as numeric columns, and the names its indices stand for.

    ``columns``: slice_index, item_index, config_index, correct, completion_tokens,
    prompt_tokens, thinking_tokens, one row per decision in no particular order. Indices are
    dense: ``slices[slice_index]`` is (dataset, language), and within that slice
    ``configs[slice_index][config_index]`` is (strategy, budget) and
    ``item_ids[slice_index][item_index]`` the item (both in name order).
    """

    slices: list[tuple[str, str]]
    configs: list[list[tuple[str, int]]]
    item_ids: list[list[str]]
    columns: dict[str, np.ndarray]


@dataclass(frozen=True)
class SliceBootstrap:
    """Bootstrap replicates (resamples × configs) of mean accuracy and mean completion tokens."""

    accuracy: np.ndarray
    completion_tokens: np.ndarray


class Pricing(BaseModel):
    """How tokens turn into money; every field optional (no price → no money column)."""

    model_config = ConfigDict(frozen=True)

    price_per_million_tokens: float | None = None
    """USD per 1M completion tokens."""
    prompt_price_per_million_tokens: float | None = None
    """USD per 1M prompt tokens (added to the completion price when set)."""
    gpu_hour_price: float | None = None
    """USD per GPU-hour; used with ``throughput_tokens_per_second`` when no token price is set."""
    throughput_tokens_per_second: float | None = None
    """Completion tokens per second per GPU (measured from the ledger when not given)."""

    def usd_per_item(self, completion_tokens: float, prompt_tokens: float) -> float | None:
        """Money for one item with these mean token counts, or None when no price is known."""
        if self.price_per_million_tokens is not None:
            usd = completion_tokens * self.price_per_million_tokens / 1e6
            if self.prompt_price_per_million_tokens is not None:
                usd += prompt_tokens * self.prompt_price_per_million_tokens / 1e6
            return usd
        if self.gpu_hour_price is not None and self.throughput_tokens_per_second:
            return (
                completion_tokens / self.throughput_tokens_per_second / 3600 * self.gpu_hour_price
            )
        return None

    def usd_per_1k_completion_tokens(self) -> float | None:
        """Marginal USD of 1k more completion tokens, or None when no price is known."""
        return self.usd_per_item(1000.0, 0.0)


class CurvePoint(BaseModel):
    """One (strategy, budget) of a slice: accuracy and cost with 95% bootstrap intervals."""

    model_config = ConfigDict(frozen=True)

    strategy: str
    budget: int
    items: int
    correct: int
    accuracy: float
    accuracy_low: float
    accuracy_high: float
    mean_completion_tokens: float
    completion_tokens_low: float
    completion_tokens_high: float
    mean_prompt_tokens: float
    mean_thinking_tokens: float
    total_completion_tokens: int
    total_prompt_tokens: int
    usd_per_item: float | None = None
    usd_per_correct: float | None = None
    """USD per correct answer (``usd_per_item`` / accuracy); None unpriced or at 0% accuracy."""


def slices_from_outcomes(outcomes: ItemOutcomes) -> list[SliceData]:
    """Every (dataset, language) slice of a run as matrices, scattered from its decisions
    (``ttscale.ledger.readers.item_outcomes``: numbers that say where each row goes)."""
    cols = outcomes.columns
    slice_index = np.asarray(cols.get("slice_index", np.empty(0)), dtype=np.int64)
    slices = []
    for index, (dataset, language) in enumerate(outcomes.slices):
        rows = slice_index == index
        at = (
            np.asarray(cols["item_index"][rows], dtype=np.int64),
            np.asarray(cols["config_index"][rows], dtype=np.int64),
        )
        shape = (len(outcomes.item_ids[index]), len(outcomes.configs[index]))
        slices.append(
            SliceData(
                dataset=dataset,
                language=language,
                item_ids=outcomes.item_ids[index],
                configs=outcomes.configs[index],
                correct=_scatter(cols["correct"][rows], at, shape),
                completion_tokens=_scatter(cols["completion_tokens"][rows], at, shape),
                prompt_tokens=_scatter(cols["prompt_tokens"][rows], at, shape),
                thinking_tokens=_scatter(cols["thinking_tokens"][rows], at, shape),
            )
        )
    return slices


def _scatter(
    values: np.ndarray, at: tuple[np.ndarray, np.ndarray], shape: tuple[int, int]
) -> np.ndarray:
    out = np.full(shape, np.nan)
    out[at] = np.asarray(values, dtype=np.float64)
    return out


def cluster_bootstrap_means(
    values: list[np.ndarray],
    present: np.ndarray,
    resamples: int,
    seed: int,
    exact_max_items: int = EXACT_BOOTSTRAP_MAX_ITEMS,
) -> list[np.ndarray]:
    """Paired cluster bootstrap of column means, resampling rows (items) with replacement.

    Every matrix in ``values`` (items × configs) is averaged under the same resampled item
    weights, over the entries where ``present`` is true. Returns one (resamples × configs) array
    per input; a replicate that drew no item with a value for a config gives NaN there. Past
    ``exact_max_items`` items, the replicates are drawn from its normal approximation.
    """
    n_items, n_configs = present.shape
    if n_items > exact_max_items:
        return normal_bootstrap_means(values, present, resamples, seed)
    rng = np.random.default_rng(seed)
    mask = present.astype(np.float64)
    filled = [np.where(present, v, 0.0) for v in values]
    outputs = [np.empty((resamples, n_configs)) for _ in values]
    block = max(1, min(resamples, _WEIGHT_BLOCK_ELEMENTS // max(n_items, 1)))
    for first in range(0, resamples, block):
        size = min(block, resamples - first)
        draws = rng.integers(0, n_items, size=(size, n_items))
        # Row r of the flat bincount counts how often each item was drawn in resample r.
        offsets = (np.arange(size) * n_items)[:, None]
        weights = np.bincount((draws + offsets).ravel(), minlength=size * n_items)
        weights = weights.reshape(size, n_items).astype(np.float64)
        denominator = weights @ mask
        with np.errstate(invalid="ignore", divide="ignore"):
            for out, matrix in zip(outputs, filled, strict=True):
                out[first : first + size] = (weights @ matrix) / denominator
    return outputs


def normal_bootstrap_means(
    values: list[np.ndarray], present: np.ndarray, resamples: int, seed: int
) -> list[np.ndarray]:
    """Replicates of the same paired column means from the cluster bootstrap's normal limit.

    Linearised, a resample's mean of column a moves by Σ_i (w_i − 1)·u_ia / D_a, with
    u_ia = present_ia·(v_ia − mean_a) and D_a the column's count; multinomial weights have
    Cov(w_i, w_j) = δ_ij − 1/n and Σ_i u_ia = 0, so Cov(a, b) = Σ_i u_ia·u_ib / (D_a·D_b) over every
    column of every input at once (the pairing between configs and measures is kept). Replicates
    are the means plus seeded normal draws with that covariance, clipped to each input's range
    (a resampled mean never leaves it). A config no item has gives NaN, like the exact bootstrap.
    """
    n_configs = present.shape[1]
    mask = present.astype(np.float64)
    counts = mask.sum(axis=0)
    has = counts > 0
    means, deviations, bounds = [], [], []
    for matrix in values:
        filled = np.where(present, matrix, 0.0)
        with np.errstate(invalid="ignore", divide="ignore"):
            mean = filled.sum(axis=0) / counts
        means.append(mean)
        deviations.append(mask * (filled - np.where(has, mean, 0.0)))
        observed = matrix[present]
        bounds.append((observed.min(), observed.max()) if observed.size else (np.nan, np.nan))
    u = np.concatenate(deviations, axis=1)
    scale = np.tile(np.where(has, counts, 1.0), len(values))
    covariance = (u.T @ u) / np.outer(scale, scale)
    eigenvalues, eigenvectors = np.linalg.eigh(covariance)
    root = eigenvectors * np.sqrt(np.clip(eigenvalues, 0.0, None))
    draws = np.random.default_rng(seed).standard_normal((resamples, root.shape[0])) @ root.T
    outputs = []
    for k, (mean, (low, high)) in enumerate(zip(means, bounds, strict=True)):
        replicates = np.clip(mean + draws[:, k * n_configs : (k + 1) * n_configs], low, high)
        replicates[:, ~has] = np.nan
        outputs.append(replicates)
    return outputs


def bootstrap_slice(data: SliceData, resamples: int, seed: int) -> SliceBootstrap:
    """Paired replicates of mean accuracy and mean completion tokens for each config of a slice."""
    accuracy, tokens = cluster_bootstrap_means(
        [data.correct, data.completion_tokens], data.present, resamples, seed
    )
    return SliceBootstrap(accuracy=accuracy, completion_tokens=tokens)


def percentile_interval(
    replicates: np.ndarray, confidence: float = 0.95
) -> tuple[np.ndarray, np.ndarray]:
    """Percentile interval along axis 0, ignoring NaN replicates."""
    tail = (1 - confidence) / 2 * 100
    with np.errstate(invalid="ignore"):
        low, high = np.nanpercentile(replicates, [tail, 100 - tail], axis=0)
    return low, high


def curve_points(
    data: SliceData, boot: SliceBootstrap, pricing: Pricing, confidence: float = 0.95
) -> list[CurvePoint]:
    """Point estimates and percentile intervals for every config of a slice."""
    present = data.present
    items = present.sum(axis=0)
    correct = np.nansum(data.correct, axis=0)
    acc_low, acc_high = percentile_interval(boot.accuracy, confidence)
    tok_low, tok_high = percentile_interval(boot.completion_tokens, confidence)
    points = []
    for c, (strategy, budget) in enumerate(data.configs):
        n = max(int(items[c]), 1)
        completion_total = float(np.nansum(data.completion_tokens[:, c]))
        prompt_total = float(np.nansum(data.prompt_tokens[:, c]))
        mean_completion = completion_total / n
        mean_prompt = prompt_total / n
        usd = pricing.usd_per_item(mean_completion, mean_prompt)
        points.append(
            CurvePoint(
                strategy=strategy,
                budget=budget,
                items=int(items[c]),
                correct=int(correct[c]),
                accuracy=float(correct[c]) / n,
                accuracy_low=float(acc_low[c]),
                accuracy_high=float(acc_high[c]),
                mean_completion_tokens=mean_completion,
                completion_tokens_low=float(tok_low[c]),
                completion_tokens_high=float(tok_high[c]),
                mean_prompt_tokens=mean_prompt,
                mean_thinking_tokens=float(np.nansum(data.thinking_tokens[:, c])) / n,
                total_completion_tokens=int(completion_total),
                total_prompt_tokens=int(prompt_total),
                usd_per_item=usd,
                usd_per_correct=usd * n / float(correct[c])
                if usd is not None and correct[c]
                else None,
            )
        )
    return points
