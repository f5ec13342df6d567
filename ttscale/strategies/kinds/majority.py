"""Self-consistency (Wang et al. 2023): N samples, majority vote over extracted answers."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import ConfigDict, Field

from ttscale.strategies.base import Outcome, StopReason, StrategyContext
from ttscale.strategies.common import majority_vote
from ttscale.strategies.config import SampleCountConfigBase
from ttscale.strategies.probed_samples import ProbedSampler, ThinkingStopOption, sampler_for
from ttscale.strategies.registry import strategy


class MajorityConfig(SampleCountConfigBase, ThinkingStopOption):
    """Self-consistency: N independent samples, majority vote over extracted answers.

    Ties go to the answer that reached the winning count first (earliest sample).
    """

    model_config = ConfigDict(title="Majority vote")

    kind: Literal["majority"] = Field("majority", title="Strategy kind")
    n: list[int] = Field(
        [1, 2, 4, 8],
        title="Sample counts N",
        description="One result per N: that many samples per question, then a majority vote.",
    )


@strategy(MajorityConfig, order=10, enabled_by_default=True)
async def majority(ctx: StrategyContext, config: MajorityConfig) -> Outcome:
    """Draw ``ctx.budget`` samples concurrently and return their majority answer (each sample's
    thinking probed and stopped when ``config.thinking`` is set)."""
    sampler = sampler_for(ctx, config)
    samples = await sampler.draw(range(ctx.budget))
    vote = majority_vote([s.answer for s in samples], ctx.question.dataset)
    detail: dict[str, Any] = {"votes": vote.counts}
    if isinstance(sampler, ProbedSampler):
        detail["thinking"] = sampler.detail([s.index for s in samples])
    return Outcome(vote.winner, StopReason.BUDGET_REACHED, len(samples), detail)
