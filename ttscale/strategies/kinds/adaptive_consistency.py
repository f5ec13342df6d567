"""Adaptive-Consistency (Aggarwal et al. 2023): sample until the leading answer is settled.

The rule is checked after every sample in index order; samples of the last round past the stop
point were drawn (their tokens count) but are marked discarded, so the answer is the sequential
rule's whatever the round size. The final ``StopDecision`` is stored in
``Outcome.detail["decision"]`` and its reason is the outcome's stop reason.
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from collections.abc import Sequence
from typing import Any, Literal

from pydantic import ConfigDict, Field

from ttscale.strategies.base import Outcome, StopReason, StrategyContext
from ttscale.strategies.common import majority_vote
from ttscale.strategies.config import SampleCountConfigBase
from ttscale.strategies.probed_samples import ProbedSampler, ThinkingStopOption, sampler_for
from ttscale.strategies.registry import strategy
from ttscale.strategies.sampling import Sample
from ttscale.strategies.stopping import StopDecision, adaptive_consistency_should_stop


class AdaptiveConsistencyConfig(SampleCountConfigBase, ThinkingStopOption):
    """Adaptive-Consistency (Aggarwal et al. 2023): sample until P(leader is the mode) ≥ threshold.

    Budget = the most samples (N_max). The rule is checked after every sample in index order.
    """

    model_config = ConfigDict(title="Adaptive-Consistency")

    kind: Literal["adaptive_consistency"] = Field("adaptive_consistency", title="Strategy kind")
    threshold: float = Field(
        0.95,
        gt=0,
        le=1,
        title="Stop threshold",
        description="Stop once P(leading answer is the mode) reaches it.",
    )
    rule: Literal["beta", "dirichlet", "auto"] = Field(
        "beta",
        title="Stopping rule",
        description="'auto' = beta for ≤ 2 distinct answers, dirichlet for ≥ 3.",
    )
    round_size: int = Field(
        2,
        ge=1,
        le=64,
        title="Samples per round",
        description="Drawn concurrently per round; smaller saves more.",
    )


def vote_counts(keys: Sequence[str | None]) -> list[int]:
    """Votes per distinct parsed answer, in order of first appearance (unparsed do not vote)."""
    return list(Counter(k for k in keys if k is not None).values())


def adaptive_consistency_decision(
    keys: Sequence[str | None], config: AdaptiveConsistencyConfig, max_samples: int
) -> StopDecision:
    """The Adaptive-Consistency decision after the samples ``keys``; "cap" at ``max_samples``.

    The cap counts samples, answered or not, so an item whose samples never parse still stops.
    """
    decision = adaptive_consistency_should_stop(
        vote_counts(keys), threshold=config.threshold, rule=config.rule
    )
    if not decision.stop and len(keys) >= max_samples:
        return dataclasses.replace(decision, stop=True, reason=StopReason.CAP)
    return decision


@strategy(AdaptiveConsistencyConfig, order=50)
async def adaptive_consistency(ctx: StrategyContext, config: AdaptiveConsistencyConfig) -> Outcome:
    """Sample in rounds of ``config.round_size`` until the rule stops or ``ctx.budget`` samples."""
    sampler = sampler_for(ctx, config)
    budget = ctx.budget
    samples: list[Sample] = []
    trace: list[float | None] = []
    used = 0
    decision: StopDecision | None = None
    while decision is None or not decision.stop:
        start = len(samples)
        size = min(config.round_size, budget - start)
        samples += await sampler.draw(range(start, start + size))
        for used in range(start + 1, len(samples) + 1):
            decision = adaptive_consistency_decision(
                [s.key for s in samples[:used]], config, budget
            )
            trace.append(decision.statistic)
            if decision.stop:
                break
    assert decision is not None  # the loop ran at least once
    for sample in samples[used:]:
        sampler.discard(sample.index)
    vote = majority_vote([s.answer for s in samples[:used]], ctx.question.dataset)
    detail: dict[str, Any] = {
        "decision": dataclasses.asdict(decision),
        "stop_probability_trace": trace,
        "votes": vote.counts,
        "samples_drawn": len(samples),
        "round_size": config.round_size,
    }
    if isinstance(sampler, ProbedSampler):
        detail["thinking"] = sampler.detail([s.index for s in samples[:used]])
    return Outcome(vote.winner, decision.stop_reason, used, detail)
