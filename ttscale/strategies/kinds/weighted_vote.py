"""Score-weighted vote with a verifier score, as in Snell et al. 2024 and search-and-learn."""

from __future__ import annotations

from typing import Literal

from pydantic import ConfigDict, Field

from ttscale.strategies.base import Outcome, StopReason, StrategyContext
from ttscale.strategies.common import weighted_vote
from ttscale.strategies.config import SampleCountConfigBase, ScorerConfig, scorer_field
from ttscale.strategies.registry import strategy
from ttscale.strategies.sampling import sample_scores, scored_sampler


class WeightedVoteConfig(SampleCountConfigBase):
    """Score-weighted vote: N samples, each answer's votes weighted by its score."""

    model_config = ConfigDict(title="Score-weighted vote")

    kind: Literal["weighted_vote"] = Field("weighted_vote", title="Strategy kind")
    scorer: ScorerConfig = scorer_field()


@strategy(WeightedVoteConfig, order=40)
async def weighted_vote_strategy(ctx: StrategyContext, config: WeightedVoteConfig) -> Outcome:
    """N = ``ctx.budget`` scored samples; the answer with the largest summed score.

    Ties go to the answer whose first sample came earliest.
    """
    async with scored_sampler(ctx, config, config.scorer) as sampler:
        samples = await sampler.draw(range(ctx.budget))
    scores = sample_scores(samples)
    vote = weighted_vote([s.answer for s in samples], scores, ctx.question.dataset)
    detail = {"votes": vote.counts, "scores": scores}
    return Outcome(vote.winner, StopReason.BUDGET_REACHED, len(samples), detail)
