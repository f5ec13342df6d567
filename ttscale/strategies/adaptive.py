"""Adaptive parallel scaling: draw samples in small rounds and stop when the item is settled.

- Adaptive-Consistency (Aggarwal et al. 2023): the rule is checked after every sample in index
  order; samples of the last round past the stop point were drawn (their tokens count) but are
  marked discarded, so the answer is the sequential rule's whatever the round size.
- ESC (Li et al. 2024): windows of w drawn concurrently; stop when a whole window agrees.
- OptScale (arXiv 2506.22376): score the first k, fit TruncNormal(μ, σ), draw up to N*.

The rules themselves are the pure functions of ``stopping.py``; the final ``StopDecision`` is
stored in ``Outcome.detail["decision"]`` and its reason is the outcome's stop reason.
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from collections.abc import Sequence
from typing import Any

from ttscale.strategies.base import Outcome, StopReason, StrategyContext
from ttscale.strategies.common import majority_vote, weighted_vote
from ttscale.strategies.config import AdaptiveConsistencyConfig, ESCConfig, OptScaleConfig
from ttscale.strategies.parallel import _scores, select_best
from ttscale.strategies.sampling import LiveSampler, Sample, Sampler
from ttscale.strategies.scorers import make_scorer
from ttscale.strategies.stopping import (
    StopDecision,
    adaptive_consistency_should_stop,
    esc_decisions,
    fit_truncnorm_map,
    fit_truncnorm_mle,
    optscale_n_star,
    optscale_should_stop,
)

# N* before clipping to the budget: a huge n_max lets "cap" be told apart from "n_star_reached".
_UNCLIPPED_N_MAX = 10**9


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


async def run_adaptive_consistency(
    sampler: Sampler, config: AdaptiveConsistencyConfig, budget: int
) -> Outcome:
    """Sample in rounds of ``config.round_size`` until the rule stops or ``budget`` samples."""
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
    vote = majority_vote([s.answer for s in samples[:used]], sampler.dataset)
    detail: dict[str, Any] = {
        "decision": dataclasses.asdict(decision),
        "stop_probability_trace": trace,
        "votes": vote.counts,
        "samples_drawn": len(samples),
        "round_size": config.round_size,
    }
    return Outcome(vote.winner, decision.stop_reason, used, detail)


async def run_esc(sampler: Sampler, config: ESCConfig, budget: int) -> Outcome:
    """Sample windows of ``config.window`` until one agrees or ``budget`` samples are drawn.

    The answer is the majority over every sample drawn (equal to the agreeing window's answer
    whenever that window holds the overall majority).
    """
    samples: list[Sample] = []
    decisions: list[StopDecision] = []
    while not decisions or not decisions[-1].stop:
        start = len(samples)
        size = min(config.window, budget - start)
        samples += await sampler.draw(range(start, start + size))
        decisions = esc_decisions([s.key for s in samples], config.window, max_samples=budget)
    vote = majority_vote([s.answer for s in samples], sampler.dataset)
    detail: dict[str, Any] = {
        "decision": dataclasses.asdict(decisions[-1]),
        "window_shares": [d.statistic for d in decisions],
        "votes": vote.counts,
        "window": config.window,
    }
    return Outcome(vote.winner, decisions[-1].stop_reason, len(samples), detail)


def fit_scores(scores: Sequence[float], config: OptScaleConfig) -> tuple[float, float, str]:
    """(μ̂, σ̂, "mle" | "map") of the first k scores."""
    if config.prior_mu is not None and config.prior_sigma is not None:
        mu, sigma = fit_truncnorm_map(
            scores, config.prior_mu, config.prior_sigma, config.prior_strength
        )
        return mu, sigma, "map"
    mu, sigma = fit_truncnorm_mle(scores)
    return mu, sigma, "mle"


async def run_optscale(sampler: Sampler, config: OptScaleConfig, budget: int) -> Outcome:
    """Score k samples, fit, then draw up to N* (clipped to ``budget``) and select.

    N* is fixed once from the first k (as in the paper), so the rest is drawn in one concurrent
    round: further rounds would save nothing.
    """
    k = min(config.k, budget)
    samples = await sampler.draw(range(k))
    mu, sigma, fit = fit_scores(_scores(samples), config)
    n_star = optscale_n_star(mu, sigma, config.s_star, config.q, k, _UNCLIPPED_N_MAX)
    target = min(n_star, budget)
    samples += await sampler.draw(range(k, target))
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
        return Outcome(chosen.answer, decision.stop_reason, len(samples), detail | chosen_detail)
    scores = _scores(samples)
    vote = weighted_vote([s.answer for s in samples], scores, sampler.dataset)
    detail |= {"votes": vote.counts, "scores": scores}
    return Outcome(vote.winner, decision.stop_reason, len(samples), detail)


async def adaptive_consistency(ctx: StrategyContext, config: AdaptiveConsistencyConfig) -> Outcome:
    """Adaptive-Consistency with at most ``ctx.budget`` samples."""
    return await run_adaptive_consistency(LiveSampler(ctx, config), config, ctx.budget)


async def esc(ctx: StrategyContext, config: ESCConfig) -> Outcome:
    """ESC with at most ``ctx.budget`` samples."""
    return await run_esc(LiveSampler(ctx, config), config, ctx.budget)


async def optscale(ctx: StrategyContext, config: OptScaleConfig) -> Outcome:
    """OptScale with N_max = ``ctx.budget``."""
    scorer = make_scorer(config.scorer)
    try:
        return await run_optscale(LiveSampler(ctx, config, scorer), config, ctx.budget)
    finally:
        await scorer.aclose()
