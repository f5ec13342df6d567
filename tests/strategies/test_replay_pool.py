"""Replay of scored and adaptive strategies against live runs; pool orders; the estimator."""

from __future__ import annotations

import asyncio
import itertools
import random
from collections import Counter

import pytest
from strategy_helpers import CountingEngine, question, run

from ttscale.strategies.config import RewardModelScorerConfig
from ttscale.strategies.kinds.adaptive_consistency import AdaptiveConsistencyConfig
from ttscale.strategies.kinds.best_of_n import BestOfNConfig
from ttscale.strategies.kinds.budget_forcing import BudgetForcingConfig
from ttscale.strategies.kinds.esc import ESCConfig
from ttscale.strategies.kinds.majority import MajorityConfig
from ttscale.strategies.kinds.optscale import OptScaleConfig
from ttscale.strategies.kinds.weighted_vote import WeightedVoteConfig
from ttscale.strategies.replay import (
    PoolExhaustedError,
    SamplePool,
    draw_order,
    replay,
    replay_item,
    unbiased_majority_at_k,
)

ITEMS = [question(i) for i in range(5)]


def _pool(n: int = 16) -> SamplePool:
    records = [
        run(CountingEngine(0.5, vary_logprobs=True), MajorityConfig(n=[n]), n, q) for q in ITEMS
    ]
    return SamplePool.from_records("run-test", records, ITEMS)


@pytest.mark.parametrize(
    "config",
    [
        BestOfNConfig(n=[8]),
        WeightedVoteConfig(n=[8]),
        AdaptiveConsistencyConfig(n=[16], round_size=3, rule="auto"),
        ESCConfig(n=[16], window=3),
        OptScaleConfig(n=[16], k=3, s_star=0.6, q=0.2),
        OptScaleConfig(n=[16], k=3, prior_mu=0.5, prior_sigma=0.2, select="weighted_vote"),
    ],
    ids=lambda c: c.kind,
)
def test_replay_in_recorded_order_matches_live(config: object) -> None:
    pool = _pool()
    budget = config.budgets()[-1]  # type: ignore[attr-defined]
    results = {r.item_id: r for r in replay(config, pool, budget)}
    for q in ITEMS:
        live = run(CountingEngine(0.5, vary_logprobs=True), config, budget, q)
        result = results[q.id]
        assert result.final_answer == live["final_answer"]
        assert result.stop_reason == live["stop_reason"]
        assert result.samples_used == live["samples_used"]
        assert result.completion_tokens == sum(c["completion_tokens"] for c in live["calls"])
        assert result.samples_drawn == len(live["calls"])
        assert result.correct == live["correct"]


def test_permutation_order_is_seeded() -> None:
    item = _pool().items[0]
    recorded = draw_order(item)
    a, b = draw_order(item, "permutation", seed=1), draw_order(item, "permutation", seed=1)
    assert recorded == list(range(16))
    assert a == b != recorded
    assert sorted(a) == recorded
    assert a != draw_order(item, "permutation", seed=2)
    # Draw i is pool sample a[i]: majority@2 in that order spends exactly their tokens.
    result = asyncio.run(replay_item(MajorityConfig(n=[2]), item, 2, "permutation", seed=1))
    assert result.samples_drawn == 2
    assert result.completion_tokens == sum(item.samples[i].completion_tokens for i in a[:2])


def test_pool_limits_are_errors() -> None:
    pool = _pool(n=4)
    with pytest.raises(PoolExhaustedError):
        replay(MajorityConfig(n=[8]), pool, 8)
    with pytest.raises(ValueError, match="cannot be replayed"):
        replay(BudgetForcingConfig(), pool, 64)
    rm = RewardModelScorerConfig(base_url="http://rm", model="m")
    with pytest.raises(ValueError, match="no stored reward_model scores"):
        replay(BestOfNConfig(n=[4], scorer=rm), pool, 4)


def _subset_estimate(answers: list[str | None], gold: str, k: int) -> float:
    """Mean over all k-subsets of the majority, a t-way tie with gold counting 1/t."""
    total = 0.0
    subsets = list(itertools.combinations(answers, k))
    for subset in subsets:
        votes = Counter(a for a in subset if a is not None)
        if not votes:
            continue
        top = max(votes.values())
        leaders = [a for a, v in votes.items() if v == top]
        total += (gold in leaders) / len(leaders)
    return total / len(subsets)


def test_unbiased_majority_at_k_against_all_subsets_on_random_pools() -> None:
    rng = random.Random(0)
    for _ in range(40):
        n = rng.randint(1, 10)
        answers = [rng.choice(["1", "2", "3", "4", None]) for _ in range(n)]
        for k in range(1, n + 1):
            assert unbiased_majority_at_k(answers, "1", k) == pytest.approx(
                _subset_estimate(answers, "1", k), abs=1e-12
            )


def test_unbiased_majority_at_k_edges() -> None:
    answers = ["1", "1", "2", None, "1", "3"]
    assert unbiased_majority_at_k(answers, "1", 1) == pytest.approx(3 / 6)
    assert unbiased_majority_at_k(answers, "9", 3) == 0.0
    assert unbiased_majority_at_k(answers, None, 3) == 0.0
    assert unbiased_majority_at_k(["1", "2"], "1", 2) == pytest.approx(0.5)
    with pytest.raises(ValueError):
        unbiased_majority_at_k(answers, "1", 7)
