"""ESC, Early-Stopping Self-Consistency (Li et al. 2024): stop when a whole window agrees.

The rule is ``stopping.esc_decisions``; the final ``StopDecision`` is stored in
``Outcome.detail["decision"]`` and its reason is the outcome's stop reason.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Literal

from pydantic import ConfigDict, Field

from ttscale.strategies.base import Outcome, StrategyContext
from ttscale.strategies.common import majority_vote
from ttscale.strategies.config import SampleCountConfigBase
from ttscale.strategies.registry import strategy
from ttscale.strategies.sampling import LiveSampler, Sample
from ttscale.strategies.stopping import StopDecision, esc_decisions


class ESCConfig(SampleCountConfigBase):
    """ESC (Li et al. 2024): sample in windows of w; stop when a whole window agrees.

    Budget = the most samples; the final answer is the majority over every sample drawn.
    """

    model_config = ConfigDict(title="Early-stopping self-consistency (ESC)")

    kind: Literal["esc"] = Field("esc", title="Strategy kind")
    window: int = Field(
        4, ge=1, le=64, title="Window size w", description="Samples drawn concurrently per window."
    )


@strategy(ESCConfig, order=60)
async def esc(ctx: StrategyContext, config: ESCConfig) -> Outcome:
    """Sample windows of ``config.window`` until one agrees or ``ctx.budget`` samples are drawn.

    The answer is the majority over every sample drawn (equal to the agreeing window's answer
    whenever that window holds the overall majority).
    """
    sampler = LiveSampler(ctx, config)
    samples: list[Sample] = []
    decisions: list[StopDecision] = []
    while not decisions or not decisions[-1].stop:
        start = len(samples)
        size = min(config.window, ctx.budget - start)
        samples += await sampler.draw(range(start, start + size))
        decisions = esc_decisions([s.key for s in samples], config.window, max_samples=ctx.budget)
    vote = majority_vote([s.answer for s in samples], ctx.question.dataset)
    detail: dict[str, Any] = {
        "decision": dataclasses.asdict(decisions[-1]),
        "window_shares": [d.statistic for d in decisions],
        "votes": vote.counts,
        "window": config.window,
    }
    return Outcome(vote.winner, decisions[-1].stop_reason, len(samples), detail)
