"""A verifier gate's threshold chosen by a target: match majority@N_max on a labelled calibration run.

The caller hands over plain data from the calibration run (``CalibrationItem``: per item, its
samples' scores, canonical answers, correctness under the run's own grading, and completion
tokens, in sample-index order). ``target_threshold`` replays the gate on those items, at each of
the calibration scores' percentiles 0, 1, ..., 100, and returns the cheapest threshold whose
replayed accuracy is at least the items' majority@N_max accuracy minus a margin. Cheapest means
the fewest completion tokens per item; a lower threshold never costs more (the first passing
sample comes no later), so ties go to the lower one. When no percentile reaches the target the
threshold is None: nothing passes, every item draws N_max samples and the gate answers as it
always does at N_max (best-scored sample, or score-weighted vote).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

from ttscale.grading import canonical_answer, is_correct

AnswerRule = Literal["best", "weighted_vote"]
CANDIDATE_PERCENTILES = tuple(range(101))
"""The thresholds tried: these percentiles of the calibration scores (as ``np.percentile``)."""


class CalibrationItem(BaseModel):
    """One item of a labelled calibration run: its samples in draw (sample index) order."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    item_id: str = Field(title="Item id")
    scores: tuple[float, ...] = Field(title="Scores", description="Each sample's scorer value.")
    answers: tuple[str | None, ...] = Field(
        title="Answers", description="Each sample's canonical answer key (None: no answer)."
    )
    correct: tuple[bool, ...] = Field(
        title="Correct", description="Each sample's answer graded by the calibration run's rules."
    )
    completion_tokens: tuple[int, ...] = Field(title="Completion tokens per sample")

    @model_validator(mode="after")
    def _aligned(self) -> CalibrationItem:
        lengths = {
            len(self.scores),
            len(self.answers),
            len(self.correct),
            len(self.completion_tokens),
        }
        if len(lengths) != 1:
            raise ValueError(
                f"calibration item {self.item_id!r}: per-sample lists differ in length"
            )
        if not self.scores:
            raise ValueError(f"calibration item {self.item_id!r} has no samples")
        if not all(math.isfinite(s) for s in self.scores):
            raise ValueError(f"calibration item {self.item_id!r}: a score is not a finite number")
        return self

    @classmethod
    def graded(
        cls,
        item_id: str,
        gold: str,
        dataset: str,
        answers: Sequence[str | None],
        scores: Sequence[float],
        completion_tokens: Sequence[int],
    ) -> CalibrationItem:
        """From raw extracted answers, graded against ``gold`` under ``dataset``'s rules."""
        return cls(
            item_id=item_id,
            scores=tuple(float(s) for s in scores),
            answers=tuple(canonical_answer(a, dataset) for a in answers),
            correct=tuple(is_correct(a, gold, dataset) for a in answers),
            completion_tokens=tuple(int(t) for t in completion_tokens),
        )


@dataclass(frozen=True)
class TargetThreshold:
    """The chosen threshold and what it was chosen on (recorded in each decision's detail)."""

    threshold: float | None
    """None: no candidate reached the target, so nothing passes (N_max samples per item)."""
    percentile: int | None
    target_accuracy: float
    majority_accuracy: float
    calibrated_accuracy: float
    """The gate's replayed accuracy on the calibration items at ``threshold``."""
    calibrated_tokens: float
    items: int


def _first_of_winner(answers: Sequence[str | None], weights: Sequence[float]) -> int | None:
    """Index of the first sample of the vote's winner (ties: the earliest first sample), as
    ``common.weighted_vote`` decides; None when no sample has an answer."""
    totals: dict[str, float] = {}
    first: dict[str, int] = {}
    for index, (key, weight) in enumerate(zip(answers, weights, strict=True)):
        if key is None:
            continue
        totals[key] = totals.get(key, 0.0) + weight
        first.setdefault(key, index)
    if not totals:
        return None
    return first[max(totals, key=lambda k: totals[k])]


def majority_correct(item: CalibrationItem, n_max: int) -> bool:
    """Whether majority@n_max (the first n_max samples) answers ``item`` correctly."""
    answers = item.answers[:n_max]
    winner = _first_of_winner(answers, [1.0] * len(answers))
    return winner is not None and item.correct[winner]


def gate_on_item(
    item: CalibrationItem, n_max: int, threshold: float | None, answer: AnswerRule
) -> tuple[bool, int]:
    """(correct, completion tokens) of the gate on ``item``'s first n_max samples, in order."""
    drawn = min(n_max, len(item.scores))
    if threshold is not None:
        for index in range(drawn):
            if item.answers[index] is not None and item.scores[index] >= threshold:
                drawn = index + 1
                break
    answers, scores = item.answers[:drawn], item.scores[:drawn]
    if answer == "best":
        answered = [i for i in range(drawn) if answers[i] is not None]
        chosen = max(answered, key=lambda i: scores[i]) if answered else None
    else:
        chosen = _first_of_winner(answers, scores)
    correct = chosen is not None and item.correct[chosen]
    return correct, sum(item.completion_tokens[:drawn])


@lru_cache(maxsize=64)
def target_threshold(
    items: tuple[CalibrationItem, ...], n_max: int, margin: float, answer: AnswerRule
) -> TargetThreshold:
    """The cheapest percentile threshold whose replayed gate accuracy on ``items`` is at least
    their majority@n_max accuracy minus ``margin`` (a fraction: 0.005 is half a point)."""
    if not items:
        raise ValueError("a target threshold needs at least one calibration item")
    majority = sum(majority_correct(item, n_max) for item in items) / len(items)
    target = majority - margin
    scores = np.concatenate([np.asarray(item.scores[:n_max], dtype=float) for item in items])
    percentile_of: dict[float, int] = {}
    for percentile, value in zip(
        CANDIDATE_PERCENTILES, np.percentile(scores, CANDIDATE_PERCENTILES).tolist(), strict=True
    ):
        percentile_of.setdefault(value, percentile)  # equal values: the lowest percentile names it
    candidates: list[float | None] = [*sorted(percentile_of), None]
    for threshold in candidates:
        outcomes = [gate_on_item(item, n_max, threshold, answer) for item in items]
        accuracy = sum(correct for correct, _ in outcomes) / len(items)
        # Candidates rise, so the first one to reach the target is the cheapest (see module doc).
        if accuracy >= target - 1e-12 or threshold is None:
            return TargetThreshold(
                threshold=threshold,
                percentile=None if threshold is None else percentile_of[threshold],
                target_accuracy=target,
                majority_accuracy=majority,
                calibrated_accuracy=accuracy,
                calibrated_tokens=sum(tokens for _, tokens in outcomes) / len(items),
                items=len(items),
            )
    raise AssertionError("unreachable: the None candidate always returns")
