"""OptScale (arXiv 2506.22376): score the first k samples, fit TruncNormal(μ, σ), draw up to N*.

The fit and N* are the pure functions of ``stopping.py``; the final ``StopDecision`` is stored in
``Outcome.detail["decision"]`` and its reason is the outcome's stop reason.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any, Literal

from pydantic import ConfigDict, Field, model_validator

from ttscale.strategies.base import Outcome, StrategyContext
from ttscale.strategies.common import weighted_vote
from ttscale.strategies.config import SampleCountConfigBase, ScorerConfig, scorer_field
from ttscale.strategies.registry import strategy
from ttscale.strategies.sampling import sample_scores, scored_sampler, select_best
from ttscale.strategies.stopping import (
    fit_truncnorm_map,
    fit_truncnorm_mle,
    optscale_n_star,
    optscale_should_stop,
)

# N* before clipping to the budget: a huge n_max lets "cap" be told apart from "n_star_reached".
_UNCLIPPED_N_MAX = 10**9


class OptScaleConfig(SampleCountConfigBase):
    """OptScale (arXiv 2506.22376): fit TruncNormal(μ, σ) to the first k scores, then draw N*.

    N* = ⌈ln q / ln F(s*)⌉ clipped to [k, N_max]; N_max is the budget. MLE fit, or MAP when
    both priors are given.
    """

    model_config = ConfigDict(title="OptScale")

    kind: Literal["optscale"] = Field("optscale", title="Strategy kind")
    k: int = Field(
        4, ge=1, le=256, title="Warm-up samples k", description="Scored before N* is estimated."
    )
    q: float = Field(
        0.05, gt=0, lt=1, title="Risk q", description="Accepted chance that no score exceeds s*."
    )
    s_star: float = Field(
        0.8, ge=0, le=1, title="Score threshold s*", description="A score in [0, 1]."
    )
    scorer: ScorerConfig = scorer_field()
    select: Literal["best_of", "weighted_vote"] = Field(
        "best_of", title="Selection", description="How the N* samples become one answer."
    )
    prior_mu: float | None = Field(
        None, title="Prior mean of μ", description="MAP prior; give it with the prior σ."
    )
    prior_sigma: float | None = Field(
        None, gt=0, title="Prior σ", description="MAP prior; give it with the prior mean."
    )
    prior_strength: float = Field(
        4.0, gt=0, title="Prior strength", description="Worth of the prior, in pseudo-samples."
    )

    @model_validator(mode="after")
    def _priors_together(self) -> OptScaleConfig:
        if (self.prior_mu is None) != (self.prior_sigma is None):
            raise ValueError("give both prior_mu and prior_sigma, or neither")
        return self


def fit_scores(scores: Sequence[float], config: OptScaleConfig) -> tuple[float, float, str]:
    """(μ̂, σ̂, "mle" | "map") of the first k scores."""
    if config.prior_mu is not None and config.prior_sigma is not None:
        mu, sigma = fit_truncnorm_map(
            scores, config.prior_mu, config.prior_sigma, config.prior_strength
        )
        return mu, sigma, "map"
    mu, sigma = fit_truncnorm_mle(scores)
    return mu, sigma, "mle"


@strategy(OptScaleConfig, order=70)
async def optscale(ctx: StrategyContext, config: OptScaleConfig) -> Outcome:
    """Score k samples, fit, then draw up to N* (clipped to N_max = ``ctx.budget``) and select.

    N* is fixed once from the first k (as in the paper), so the rest is drawn in one concurrent
    round: further rounds would save nothing.
    """
    budget = ctx.budget
    async with scored_sampler(ctx, config, config.scorer) as sampler:
        k = min(config.k, budget)
        samples = await sampler.draw(range(k))
        mu, sigma, fit = fit_scores(sample_scores(samples), config)
        n_star = optscale_n_star(mu, sigma, config.s_star, config.q, k, _UNCLIPPED_N_MAX)
        samples += await sampler.draw(range(k, min(n_star, budget)))
        decision = optscale_should_stop(len(samples), n_star, budget)
        detail: dict[str, Any] = {
            "decision": dataclasses.asdict(decision),
            "mu": mu,
            "sigma": sigma,
            "fit": fit,
            "k": k,
            "n_star": n_star,
            "select": config.select,
        }
        if config.select == "best_of":
            chosen, chosen_detail = select_best(sampler, samples)
            return Outcome(
                chosen.answer, decision.stop_reason, len(samples), detail | chosen_detail
            )
    scores = sample_scores(samples)
    vote = weighted_vote([s.answer for s in samples], scores, ctx.question.dataset)
    detail |= {"votes": vote.counts, "scores": scores}
    return Outcome(vote.winner, decision.stop_reason, len(samples), detail)
