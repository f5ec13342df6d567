"""Parallel scaling with a fixed N: majority vote, best-of-N and score-weighted vote.

Best-of-N and weighted voting with a verifier score as in Snell et al. 2024 and the
search-and-learn recipes; ties always go to the earliest sample.
"""

from __future__ import annotations

from collections.abc import Sequence

from ttscale.strategies.base import Outcome, StopReason, StrategyContext
from ttscale.strategies.common import majority_vote, weighted_vote
from ttscale.strategies.config import BestOfNConfig, WeightedVoteConfig
from ttscale.strategies.sampling import LiveSampler, Sample, Sampler
from ttscale.strategies.scorers import make_scorer


def _scores(samples: Sequence[Sample]) -> list[float]:
    scores = [s.score for s in samples]
    if any(s is None for s in scores):
        raise ValueError("every sample needs a score for this strategy")
    return [float(s) for s in scores if s is not None]


def best_sample(samples: Sequence[Sample]) -> Sample:
    """The highest-scored sample with an answer (any sample if none has one).

    In case of a tie, returns the earliest of the tied samples.
    """
    scores = _scores(samples)
    answered = [i for i, s in enumerate(samples) if s.answer is not None]
    candidates = answered or list(range(len(samples)))
    # max() keeps the first maximum, i.e. the earliest sample.
    return samples[max(candidates, key=lambda i: scores[i])]


def select_best(sampler: Sampler, samples: Sequence[Sample]) -> tuple[Sample, dict[str, object]]:
    """Best-of selection: keeps the best sample, marks every other one discarded."""
    chosen = best_sample(samples)
    for sample in samples:
        if sample.index != chosen.index:
            sampler.discard(sample.index)
    return chosen, {"scores": _scores(samples), "chosen_sample": chosen.index}


async def run_majority(sampler: Sampler, n: int) -> Outcome:
    """N samples, majority vote (ties: the answer that reached the count first)."""
    samples = await sampler.draw(range(n))
    vote = majority_vote([s.answer for s in samples], sampler.dataset)
    return Outcome(vote.winner, StopReason.BUDGET_REACHED, len(samples), {"votes": vote.counts})


async def run_best_of_n(sampler: Sampler, n: int) -> Outcome:
    """N scored samples; the answer of the best one."""
    samples = await sampler.draw(range(n))
    chosen, detail = select_best(sampler, samples)
    return Outcome(chosen.answer, StopReason.BUDGET_REACHED, len(samples), detail)


async def run_weighted_vote(sampler: Sampler, n: int) -> Outcome:
    """N scored samples; the answer with the largest summed score."""
    samples = await sampler.draw(range(n))
    scores = _scores(samples)
    vote = weighted_vote([s.answer for s in samples], scores, sampler.dataset)
    return Outcome(
        vote.winner,
        StopReason.BUDGET_REACHED,
        len(samples),
        {"votes": vote.counts, "scores": scores},
    )


async def best_of_n(ctx: StrategyContext, config: BestOfNConfig) -> Outcome:
    """Best-of-N with ``config.scorer``; N = ``ctx.budget``. Unchosen samples are discarded."""
    scorer = make_scorer(config.scorer)
    try:
        return await run_best_of_n(LiveSampler(ctx, config, scorer), ctx.budget)
    finally:
        await scorer.aclose()


async def weighted_vote_strategy(ctx: StrategyContext, config: WeightedVoteConfig) -> Outcome:
    """Score-weighted vote over N = ``ctx.budget`` samples."""
    scorer = make_scorer(config.scorer)
    try:
        return await run_weighted_vote(LiveSampler(ctx, config, scorer), ctx.budget)
    finally:
        await scorer.aclose()
