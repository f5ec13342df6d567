"""Best-of-N, weighted vote and the scorers (the reward model over a mocked HTTP server)."""

from __future__ import annotations

import asyncio
import json
import math
import random
from typing import Any

import httpx
import pytest
from strategy_helpers import CountingEngine, assert_accounted, run

from ttscale.engines.base import Completion
from ttscale.errors import ConfigError
from ttscale.strategies.config import RewardModelScorerConfig
from ttscale.strategies.kinds.best_of_n import BestOfNConfig
from ttscale.strategies.kinds.weighted_vote import WeightedVoteConfig
from ttscale.strategies.sampling import Sample, best_sample
from ttscale.strategies.scorers import (
    RewardModelScorer,
    make_scorer,
    mean_logprob_score,
    self_certainty,
)


def test_best_of_n_keeps_the_best_scored_sample() -> None:
    engine = CountingEngine(accuracy=0.5, vary_logprobs=True)
    record = run(engine, BestOfNConfig(n=[8]), 8)
    assert_accounted(record, engine)
    calls = record["calls"]
    assert len(calls) == 8 and all(c["score"] is not None for c in calls)
    kept = [c for c in calls if c["used"]]
    assert len(kept) == 1
    assert kept[0]["score"] == max(c["score"] for c in calls)
    assert record["final_answer"] == kept[0]["extracted_answer"]
    assert record["detail"]["chosen_sample"] == kept[0]["sample_index"]
    for c in calls:
        # The score is exp(mean token logprob), by hand from the stored numbers ...
        assert c["score"] == pytest.approx(
            math.exp(c["cumulative_logprob"] / c["completion_tokens"])
        )
        # ... and from how CountingEngine made them: mean logprob −1.5·U, U seeded by the request.
        assert c["score"] == pytest.approx(math.exp(-1.5 * random.Random(c["seed"]).random()))


def test_best_sample_ties_go_to_the_earliest_answered_sample() -> None:
    samples = [
        Sample(0, None, None, 5, 0.9),
        Sample(1, "3", "3", 5, 0.7),
        Sample(2, "4", "4", 5, 0.7),
    ]
    assert best_sample(samples).index == 1
    assert best_sample([Sample(0, None, None, 1, 0.2)]).index == 0


def test_weighted_vote_sums_scores_per_answer() -> None:
    engine = CountingEngine(accuracy=0.5, vary_logprobs=True)
    record = run(engine, WeightedVoteConfig(n=[8]), 8)
    assert_accounted(record, engine)
    totals: dict[str, float] = {}
    for c in record["calls"]:
        if c["extracted_answer"] is not None:
            totals[c["extracted_answer"]] = totals.get(c["extracted_answer"], 0.0) + c["score"]
    assert record["final_answer"] == max(totals, key=lambda a: totals[a])
    assert all(c["used"] for c in record["calls"])


def test_mean_logprob_score() -> None:
    assert mean_logprob_score(-2.0, 4) == pytest.approx(math.exp(-0.5))
    assert mean_logprob_score(-1.0, 0) == 0.0
    with pytest.raises(ConfigError):
        mean_logprob_score(None, 3)


def test_self_certainty_formula() -> None:
    uniform = [[math.log(0.25)] * 4]
    assert self_certainty(uniform, 4) == pytest.approx(0.0)
    # KL(U ‖ p) for p = (0.7, 0.1, 0.1, 0.1), by hand.
    p = [0.7, 0.1, 0.1, 0.1]
    expected = sum(0.25 * math.log(0.25 / x) for x in p)
    assert self_certainty([[math.log(x) for x in p]], 4) == pytest.approx(expected)
    # Top-2 of the same distribution: the rest is spread evenly, which here is exact.
    assert self_certainty([[math.log(0.7), math.log(0.1)]], 4) == pytest.approx(expected)


def _completion(text: str = "Step 1.\n\nFinal Answer: 4") -> Completion:
    return Completion(text, tuple(range(len(text))), "stop")


def _score_with(config: RewardModelScorerConfig, handler: Any) -> float:
    async def go() -> float:
        scorer = RewardModelScorer(config, transport=httpx.MockTransport(handler))
        try:
            return await scorer.score("What is 2 plus 2?", _completion())
        finally:
            await scorer.aclose()

    return asyncio.run(go())


RM = RewardModelScorerConfig(base_url="http://rm:8000/", model="prm")


def test_reward_model_pooling_request_and_prm_steps() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        steps = [[0.2, 0.8], [0.6, 0.4], [0.1, 0.9]]
        return httpx.Response(
            200, json={"data": [{"index": 0, "object": "pooling", "data": steps}]}
        )

    assert _score_with(RM, handler) == pytest.approx(0.4)  # min over steps
    assert _score_with(RM.model_copy(update={"step_aggregate": "last"}), handler) == 0.9
    request = seen[0]
    assert request.url == "http://rm:8000/pooling"
    body = json.loads(request.content)
    assert body["model"] == "prm"
    assert body["messages"][0] == {"role": "user", "content": "What is 2 plus 2?"}
    assert body["messages"][1]["role"] == "assistant"
    assert "Final Answer: 4" in body["messages"][1]["content"]


def test_reward_model_scalar_logits_and_classify() -> None:
    def scalar(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={"data": [{"data": 1.5}]})

    logits = RM.model_copy(update={"logits": True})
    assert _score_with(logits, scalar) == pytest.approx(1 / (1 + math.exp(-1.5)))
    assert _score_with(RM, scalar) == 1.0  # clipped to [0, 1]

    def classify(request: httpx.Request) -> httpx.Response:
        assert request.url.path == "/classify"
        assert json.loads(request.content)["input"].startswith("What is 2 plus 2?")
        return httpx.Response(200, json={"data": [{"index": 0, "probs": [0.3, 0.7]}]})

    assert _score_with(RM.model_copy(update={"endpoint": "classify"}), classify) == 0.7


def test_reward_model_retries_5xx_and_rejects_4xx_and_bad_bodies() -> None:
    attempts = []

    def flaky(request: httpx.Request) -> httpx.Response:
        attempts.append(1)
        if len(attempts) < 3:
            return httpx.Response(503)
        return httpx.Response(200, json={"data": [{"data": [0.5]}]})

    assert _score_with(RM, flaky) == 0.5
    assert len(attempts) == 3
    with pytest.raises(ConfigError, match="400"):
        _score_with(RM, lambda r: httpx.Response(400, text="bad model"))
    with pytest.raises(ConfigError, match="unexpected"):
        _score_with(RM, lambda r: httpx.Response(200, json={"oops": 1}))


def test_make_scorer_by_kind() -> None:
    assert make_scorer(RM).name == "reward_model"
    assert make_scorer(BestOfNConfig().scorer).name == "mean_logprob"
