"""Best-of-N with a verifier score, as in Snell et al. 2024 and the search-and-learn recipes."""

from __future__ import annotations

from typing import Literal

from pydantic import ConfigDict, Field

from ttscale.strategies.base import Outcome, StopReason, StrategyContext
from ttscale.strategies.config import SampleCountConfigBase, ScorerConfig, scorer_field
from ttscale.strategies.registry import strategy
from ttscale.strategies.sampling import scored_sampler, select_best


class BestOfNConfig(SampleCountConfigBase):
    """Best-of-N: N samples, the one the scorer rates highest (ties: earliest sample)."""

    model_config = ConfigDict(title="Best-of-N")

    kind: Literal["best_of_n"] = Field("best_of_n", title="Strategy kind")
    scorer: ScorerConfig = scorer_field()


@strategy(BestOfNConfig, order=30)
async def best_of_n(ctx: StrategyContext, config: BestOfNConfig) -> Outcome:
    """Best-of-N with ``config.scorer``; N = ``ctx.budget``. Unchosen samples are discarded."""
    async with scored_sampler(ctx, config, config.scorer) as sampler:
        samples = await sampler.draw(range(ctx.budget))
        chosen, detail = select_best(sampler, samples)
    return Outcome(chosen.answer, StopReason.BUDGET_REACHED, len(samples), detail)
