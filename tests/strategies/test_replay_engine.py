"""Replay is the live strategy on the replay engine: same samples in, same decisions out.

Every replayable kind in the registry (a new one included, with its default settings) runs live
on the scripted engine; its own stored samples then replay through ``ReplayEngine``, and every
decision, stop reason, detail and token count must come out the same.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from strategy_helpers import CountingEngine, question, run

from ttscale.engines.base import Engine, SamplingSpec
from ttscale.engines.replay import PoolExhaustedError, ReplayEngine, StoredCompletion
from ttscale.strategies import registry
from ttscale.strategies.replay import SamplePool, replay, replay_item

ITEMS = [question(i) for i in range(6)]
BUDGET = 12

# Settings under which each adaptive kind stops for more than one reason across ITEMS; a kind not
# listed here runs with its defaults.
SETTINGS: dict[str, dict[str, Any]] = {
    "adaptive_consistency": {"round_size": 3, "rule": "auto", "threshold": 0.9},
    "esc": {"window": 3},
    "optscale": {"k": 3, "s_star": 0.6, "q": 0.2},
    # Online DeepConf needs per-token confidence, which no pool keeps; offline replays from the
    # statistics each call stored.
    "deepconf": {"mode": "offline", "window": 12, "top_logprobs": 3, "keep_percent": 40},
}
NEEDS_STORED_CONFIDENCE = {"deepconf"}
REPLAYABLE = [e for e in registry.entries() if e.replayable]


def _config(entry: registry.StrategyKind) -> Any:
    return entry.config.model_validate({"n": [BUDGET], **SETTINGS.get(entry.kind, {})})


@pytest.mark.parametrize("entry", REPLAYABLE, ids=lambda e: e.kind)
def test_each_kind_replays_its_own_samples_to_the_same_decisions(
    entry: registry.StrategyKind,
) -> None:
    config = _config(entry)
    live = [run(CountingEngine(0.5, vary_logprobs=True), config, BUDGET, q) for q in ITEMS]
    pool = SamplePool.from_records("run-live", live, ITEMS)
    for record, item in zip(live, pool.items, strict=True):
        assert record["error"] is None, record["error"]
        replayed = asyncio.run(replay_item(config, item, BUDGET))
        assert replayed.final_answer == record["final_answer"]
        assert replayed.stop_reason == record["stop_reason"]
        assert replayed.samples_used == record["samples_used"]
        assert replayed.detail == record["detail"]
        assert replayed.correct == record["correct"]
        assert replayed.samples_drawn == len(record["calls"])
        assert replayed.completion_tokens == sum(c["completion_tokens"] for c in record["calls"])


@pytest.mark.parametrize("entry", REPLAYABLE, ids=lambda e: e.kind)
def test_a_large_pool_replays_every_kind_like_a_live_run_on_the_same_seeds(
    entry: registry.StrategyKind,
) -> None:
    # Sample i has the same seed in every unit of a run, so majority@16's samples hold every
    # draw a smaller or adaptive unit makes.
    if entry.kind in NEEDS_STORED_CONFIDENCE:
        pytest.skip("majority's samples carry no confidence (test_deepconf_replay.py)")
    majority = registry.get("majority").config.model_validate({"n": [16]})
    records = [run(CountingEngine(0.5, vary_logprobs=True), majority, 16, q) for q in ITEMS]
    pool = SamplePool.from_records("run-pool", records, ITEMS)
    config = _config(entry)
    for result, item in zip(replay(config, pool, BUDGET), ITEMS, strict=True):
        live = run(CountingEngine(0.5, vary_logprobs=True), config, BUDGET, item)
        assert (result.final_answer, result.stop_reason, result.detail) == (
            live["final_answer"],
            live["stop_reason"],
            live["detail"],
        )


def test_sequential_kinds_are_refused() -> None:
    pool = SamplePool.from_records(
        "run-pool",
        [run(CountingEngine(), registry.get("majority").config.model_validate({"n": [2]}), 2)],
        [question()],
    )
    for entry in registry.entries():
        if not entry.replayable:
            with pytest.raises(ValueError, match="cannot be replayed"):
                replay(entry.config.model_validate({}), pool, 1)


def test_the_replay_engine_serves_stored_samples_by_seed_and_nothing_else() -> None:
    stored = StoredCompletion("Final Answer: 4", 15, -1.5, score=0.25)
    engine = ReplayEngine({7: stored})
    assert isinstance(engine, Engine)
    generation = asyncio.run(engine.generate([1, 2], SamplingSpec(max_tokens=64, seed=7)))
    (completion,) = generation.completions
    assert (completion.text, completion.num_tokens) == ("Final Answer: 4", 15)
    assert completion.cumulative_logprob == -1.5
    assert engine.stored_score(completion) == 0.25
    with pytest.raises(PoolExhaustedError):
        asyncio.run(engine.generate([1], SamplingSpec(max_tokens=64, seed=8)))
    with pytest.raises(ValueError, match="continues or forces text"):
        asyncio.run(engine.generate([1], SamplingSpec(max_tokens=64, seed=7, stop=("</think>",))))
