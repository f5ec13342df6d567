"""Token-level confidence (DeepConf, Fu et al. 2025, arXiv 2508.15260): pure functions.

Token confidence C_i = −(1/k)·Σ_j log P_i(j) over the k most likely tokens at position i: large
when the model is sure (the top token takes the mass, the others' logprobs are very negative).
Group confidence is the mean C_i over a sliding window of n tokens; a trace shorter than n has
one group, all of it (as in the paper's reference code). A trace's lowest group confidence is its
least confident stretch; its tail confidence the mean C_i over its last T tokens.

Checked against the paper's reference code (facebookresearch/deepconf, ``helper.py``), which
differs in two details kept out here: it rounds C_i and group means to 3 decimals, and it
averages over every logprob vLLM returns, which adds the sampled token when it ranks below k.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import accumulate

import numpy as np

from ttscale.engines.base import TopLogprobs

DEFAULT_WINDOW = 2048
"""The paper's group size n (tokens)."""
DEFAULT_TAIL = 2048
"""The paper's tail length T (tokens)."""
_SCALE = 10**12
"""Window sums are taken over confidences in integer units of 1e-12, so they are exact: a
window's mean is the same float however it was summed (running or cumulative), and windows
that tie tie exactly against a threshold taken from them."""
_LOWEST_LOGPROB = -1e4
"""A token of probability 0 (logprob −inf) counts as this, so confidences stay finite."""


def _units(confidence: float) -> int:
    return round(confidence * _SCALE)


def token_confidences(top_logprobs: Sequence[TopLogprobs]) -> list[float]:
    """C_i of each position: minus the mean of its top-k logprobs."""
    if any(not position for position in top_logprobs):
        raise ValueError("token confidence needs at least one logprob per position")
    return [
        -sum(max(value, _LOWEST_LOGPROB) for value in position) / len(position)
        for position in top_logprobs
    ]


def group_confidences(confidences: Sequence[float], window: int) -> list[float]:
    """Mean confidence of every window of ``window`` consecutive tokens, in order.

    A trace shorter than the window is one group (its mean); an empty one has none.
    """
    if window < 1:
        raise ValueError(f"window must be >= 1, got {window}")
    if not confidences:
        return []
    sums = [0, *accumulate(_units(c) for c in confidences)]
    if len(confidences) < window:
        return [sums[-1] / _SCALE / len(confidences)]
    return [(sums[end] - sums[end - window]) / _SCALE / window for end in range(window, len(sums))]


@dataclass(frozen=True)
class ConfidenceStats:
    """One trace's confidence statistics, as the ledger stores them."""

    mean_confidence: float
    lowest_group_confidence: float
    tail_confidence: float


def confidence_stats(
    top_logprobs: Sequence[TopLogprobs],
    window: int = DEFAULT_WINDOW,
    tail: int = DEFAULT_TAIL,
) -> ConfidenceStats | None:
    """Mean, lowest-group (window ``window``) and tail (last ``tail`` tokens) confidence of a
    trace; None when it has no top-k logprobs (not asked for, or no tokens)."""
    if not top_logprobs:
        return None
    confidences = token_confidences(top_logprobs)
    tail_values = confidences[-tail:]
    return ConfidenceStats(
        mean_confidence=group_confidences(confidences, len(confidences))[0],
        lowest_group_confidence=min(group_confidences(confidences, window)),
        tail_confidence=group_confidences(tail_values, len(tail_values))[0],
    )


class GroupConfidenceStop:
    """An ``EarlyStop``: fires at the first full window whose group confidence is below
    ``threshold`` (DeepConf online). A trace shorter than the window is never stopped here; its
    lowest group confidence is checked once it is done."""

    def __init__(self, threshold: float, window: int) -> None:
        if window < 1:
            raise ValueError(f"window must be >= 1, got {window}")
        self.threshold = threshold
        self.window = window
        self._recent: deque[int] = deque(maxlen=window)
        self._sum = 0

    def __call__(self, top_logprobs: TopLogprobs) -> bool:
        (confidence,) = token_confidences([top_logprobs])
        if len(self._recent) == self.window:
            self._sum -= self._recent[0]
        self._recent.append(_units(confidence))
        self._sum += self._recent[-1]
        # The same expression as group_confidences, so a stop agrees with the trace's stats.
        return (
            len(self._recent) == self.window and self._sum / _SCALE / self.window < self.threshold
        )


def keep_threshold(confidences: Sequence[float], keep_percent: float) -> float:
    """The confidence at or above which a trace is among the top ``keep_percent`` % (the
    (100 − η)-th percentile, linearly interpolated as numpy's default)."""
    if not confidences:
        raise ValueError("no confidences to take a percentile of")
    if not 0 < keep_percent <= 100:
        raise ValueError(f"keep_percent must be in (0, 100], got {keep_percent}")
    return float(np.percentile(np.asarray(confidences, dtype=float), 100 - keep_percent))


def top_percent(confidences: Sequence[float], keep_percent: float) -> list[int]:
    """Indices of the traces in the top ``keep_percent`` % by confidence (ties at the cut kept)."""
    if not confidences:
        return []
    cut = keep_threshold(confidences, keep_percent)
    return [i for i, value in enumerate(confidences) if value >= cut]
