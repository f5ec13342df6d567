"""Verifier-gated stopping: draw samples one at a time, stop at the first one the scorer passes.

The pass threshold is never a raw constant (it would fit one scorer's scale only). It is a
percentile of scores from one of two sources:

- ``calibration_scores``: the scores of a named earlier run (``calibration_run``), which the
  caller reads from the ledger and hands over as plain data. This is the run-level calibration:
  every sample of every item is gated, from the first one on.
- otherwise the item's own warm-up: its first ``warmup`` samples are drawn together and their
  scores give the threshold; only later samples are gated (a warm-up sample cannot pass a
  percentile of the warm-up itself in any useful sense). The warm-up is per item, not "the run's
  first items", because a shard runs every unit concurrently and shards run on several workers:
  a threshold taken from whichever items finished first would differ between runs of the same
  request, so results would not be reproducible.

Or, with ``calibrate="match_majority"``, chosen by a target rather than a percentile: the caller
hands over the labelled samples of the named ``calibration_run`` (``calibration_items``: per
item, scores, answers, correctness under that run's grading, tokens) and the threshold is the
cheapest of those scores' percentiles whose gate, replayed on the calibration items, is at least
as accurate as their majority@N_max, minus ``target_margin`` (``strategies/gate_target.py``).
It is chosen per budget (N_max). If no percentile reaches the target, nothing passes: the gate
draws N_max samples and answers as at N_max (best-of-N_max, or the weighted vote).

A sample passes when it has an answer and its score is at least the threshold. The answer is
the best-scored drawn sample (``answer="best"``) or the score-weighted vote over every drawn
sample (``answer="weighted_vote"``). Works with any scorer, in live runs and in replay.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, Literal

import numpy as np
from pydantic import ConfigDict, Field, field_validator, model_validator

from ttscale.strategies.base import Outcome, StopReason, StrategyContext
from ttscale.strategies.common import weighted_vote
from ttscale.strategies.config import SampleCountConfigBase, ScorerConfig, scorer_field
from ttscale.strategies.gate_target import CalibrationItem, TargetThreshold, target_threshold
from ttscale.strategies.registry import strategy
from ttscale.strategies.sampling import Sample, sample_scores, scored_sampler, select_best


class VerifierGateConfig(SampleCountConfigBase):
    """Verifier gate: sample until one sample's score passes a calibrated threshold, or N_max.

    Budget = the most samples (N_max).
    """

    model_config = ConfigDict(title="Verifier gate")

    kind: Literal["verifier_gate"] = Field("verifier_gate", title="Strategy kind")
    scorer: ScorerConfig = scorer_field()
    percentile: float = Field(
        75.0,
        gt=0,
        le=100,
        title="Threshold percentile",
        description="The pass threshold is this percentile of the calibration scores.",
    )
    warmup: int = Field(
        2,
        ge=1,
        le=64,
        title="Warm-up samples per item",
        description="Without calibration scores: the item's first samples, whose scores set "
        "its threshold; they are not gated themselves.",
    )
    calibration_run: str | None = Field(
        None,
        title="Calibration run",
        description="A run whose stored scores set the threshold (read by the caller).",
    )
    calibration_scores: tuple[float, ...] | None = Field(
        None,
        title="Calibration scores",
        description="The calibration run's sample scores, as the caller read them.",
    )
    calibrate: Literal["percentile", "match_majority"] = Field(
        "percentile",
        title="Threshold rule",
        description="'percentile': the percentile of calibration (or warm-up) scores; "
        "'match_majority': the cheapest score percentile of a labelled calibration run whose "
        "gate is as accurate there as majority@N_max (minus the margin).",
    )
    target_margin: float = Field(
        0.0,
        ge=0,
        le=1,
        title="Target margin",
        description="match_majority: accuracy the gate may lose against majority@N_max on the "
        "calibration run, as a fraction (0.005 = half a point).",
    )
    calibration_items: tuple[CalibrationItem, ...] | None = Field(
        None,
        title="Calibration items",
        description="match_majority: the calibration run's labelled samples, as the caller "
        "read them.",
    )
    answer: Literal["best", "weighted_vote"] = Field(
        "best",
        title="Answer",
        description="'best': the best-scored drawn sample; 'weighted_vote': score-weighted vote.",
    )

    @field_validator("calibration_scores")
    @classmethod
    def _finite_scores(cls, v: tuple[float, ...] | None) -> tuple[float, ...] | None:
        if v is not None and not v:
            raise ValueError("calibration_scores is empty: the calibration run stored no scores")
        if v is not None and not all(math.isfinite(s) for s in v):
            raise ValueError("calibration_scores holds a value that is not a finite number")
        return v

    @model_validator(mode="after")
    def _target_needs_a_calibration_run(self) -> VerifierGateConfig:
        if self.calibrate == "match_majority":
            if self.calibration_run is None and self.calibration_items is None:
                raise ValueError("calibrate='match_majority' needs a calibration_run")
            if self.calibration_items is not None and not self.calibration_items:
                raise ValueError("calibration_items is empty: the calibration run has no items")
        return self


def gate_threshold(scores: Sequence[float], percentile: float) -> float:
    """The ``percentile`` of ``scores``, linearly interpolated between order statistics."""
    if not scores:
        raise ValueError("a threshold needs at least one score")
    return float(np.percentile(np.asarray(scores, dtype=float), percentile))


def passes(sample: Sample, threshold: float) -> bool:
    """Whether ``sample`` stops the gate: it has an answer and scores at least ``threshold``."""
    return sample.answer is not None and sample.score is not None and sample.score >= threshold


def target_of(config: VerifierGateConfig, n_max: int) -> TargetThreshold:
    """The match_majority threshold for N_max = ``n_max`` (computed once per config and N_max)."""
    if config.calibration_items is None:
        raise ValueError(
            f"verifier_gate: calibration run {config.calibration_run!r} was not read; "
            "its caller hands its labelled samples over as calibration_items"
        )
    return target_threshold(config.calibration_items, n_max, config.target_margin, config.answer)


@strategy(VerifierGateConfig, order=110)
async def verifier_gate(ctx: StrategyContext, config: VerifierGateConfig) -> Outcome:
    """Gate on ``config.scorer``; N_max = ``ctx.budget``."""
    async with scored_sampler(ctx, config, config.scorer) as sampler:
        samples: list[Sample] = []
        detail: dict[str, Any] = {}
        threshold: float | None
        if config.calibrate == "match_majority":
            chosen_by = target_of(config, ctx.budget)
            threshold, source = chosen_by.threshold, "match_majority"
            detail = {
                "threshold_percentile": chosen_by.percentile,
                "target_accuracy": chosen_by.target_accuracy,
                "calibration_majority_accuracy": chosen_by.majority_accuracy,
                "calibration_gate_accuracy": chosen_by.calibrated_accuracy,
                "calibration_items": chosen_by.items,
            }
        elif config.calibration_scores is not None:
            threshold = gate_threshold(config.calibration_scores, config.percentile)
            source = "calibration"
        else:
            samples = await sampler.draw(range(min(config.warmup, ctx.budget)))
            threshold = gate_threshold(sample_scores(samples), config.percentile)
            source = "item_warmup"
        passed: int | None = None
        while passed is None and len(samples) < ctx.budget:
            (sample,) = await sampler.draw([len(samples)])
            samples.append(sample)
            if threshold is not None and passes(sample, threshold):
                passed = sample.index
        detail |= {
            "threshold": threshold,
            "threshold_source": source,
            "calibration_run": config.calibration_run,
            "passed_sample": passed,
        }
        if config.answer == "best":
            chosen, chosen_detail = select_best(sampler, samples)
            answer = chosen.answer
            detail |= chosen_detail
        else:
            scores = sample_scores(samples)
            vote = weighted_vote([s.answer for s in samples], scores, ctx.question.dataset)
            answer = vote.winner
            detail |= {"votes": vote.counts, "scores": scores}
    reason = StopReason.VERIFIER_PASSED if passed is not None else StopReason.CAP
    return Outcome(answer, reason, len(samples), detail)
