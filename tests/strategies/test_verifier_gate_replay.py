"""Verifier gate in replay: on stored scores (as an imported pool carries them), and against live."""

from __future__ import annotations

import asyncio

from strategy_helpers import PROFILE, RUN_SEED, CountingEngine, question

from ttscale.runner import Unit, attempt_unit
from ttscale.strategies.kinds.best_of_n import BestOfNConfig
from ttscale.strategies.kinds.verifier_gate import VerifierGateConfig
from ttscale.strategies.replay import PoolItem, PoolSample, SamplePool, replay


def _sample(answer: str, score: float, tokens: int) -> PoolSample:
    return PoolSample(answer, tokens, score, None, f"so it is {answer}. Final Answer: {answer}")


def test_replay_gates_on_the_pool_scores() -> None:
    # Item a: warm-up (0.1, 0.5) → median threshold 0.3; sample 2 (0.2) fails, 3 (0.4) passes.
    # Item b: warm-up (0.9, 0.7) → 0.8; nothing later reaches it, so all 5 are drawn.
    pool = SamplePool(
        "imported",
        (
            PoolItem(
                "a",
                "arithmetic",
                "7",
                tuple(
                    _sample(answer, score, tokens)
                    for answer, score, tokens in [
                        ("7", 0.1, 10), ("8", 0.5, 20), ("7", 0.2, 30), ("7", 0.4, 40), ("7", 1.0, 50)
                    ]
                ),
            ),
            PoolItem(
                "b",
                "arithmetic",
                "3",
                tuple(
                    _sample(answer, score, 5)
                    for answer, score in [("3", 0.9, ), ("4", 0.7), ("4", 0.1), ("3", 0.2), ("4", 0.3)]
                ),
            ),
        ),
    )  # fmt: skip
    best = {r.item_id: r for r in replay(VerifierGateConfig(n=[5], percentile=50), pool, 5)}
    a, b = best["a"], best["b"]
    assert (a.stop_reason, a.samples_drawn, a.completion_tokens) == ("verifier_passed", 4, 100)
    assert (a.final_answer, a.correct) == ("8", False)  # sample 1 scored best among those drawn
    assert (b.stop_reason, b.samples_drawn, b.completion_tokens) == ("cap", 5, 25)
    assert (b.final_answer, b.correct) == ("3", True)
    vote_config = VerifierGateConfig(n=[5], percentile=50, answer="weighted_vote")
    vote = {r.item_id: r for r in replay(vote_config, pool, 5)}
    # a: 7 gets 0.1 + 0.2 + 0.4 = 0.7 against 8's 0.5. b: 3 gets 1.1, 4 gets 1.1: a tie, and
    # 3's first sample came first.
    assert (vote["a"].final_answer, vote["b"].final_answer) == ("7", "3")


def test_replay_reproduces_live_gates() -> None:
    """A live best-of-16 run's samples and scores, replayed, give the live gate's every decision."""
    items = [question(i) for i in range(6)]
    engine = CountingEngine(accuracy=0.5, vary_logprobs=True)

    async def live(config: object, budget: int) -> list[dict]:
        unit = Unit(config.kind, budget, config)  # type: ignore[attr-defined]
        return [
            (await attempt_unit(engine, PROFILE, q, unit, "r", RUN_SEED)).to_json() for q in items
        ]

    pool = SamplePool.from_records("r", asyncio.run(live(BestOfNConfig(n=[16]), 16)), items)
    reasons = set()
    for config in [
        VerifierGateConfig(n=[16], warmup=3, percentile=80),
        VerifierGateConfig(n=[16], calibration_scores=(0.3, 0.5, 0.7), answer="weighted_vote"),
    ]:
        expected = {r["item_id"]: r for r in asyncio.run(live(config, 16))}
        results = replay(config, pool, 16)
        reasons |= {r.stop_reason for r in results}
        for result in results:
            record = expected[result.item_id]
            assert result.final_answer == record["final_answer"]
            assert result.stop_reason == record["stop_reason"]
            assert result.samples_drawn == len(record["calls"])
            assert result.completion_tokens == sum(c["completion_tokens"] for c in record["calls"])
    assert reasons == {"verifier_passed", "cap"}  # both ways of stopping were compared
