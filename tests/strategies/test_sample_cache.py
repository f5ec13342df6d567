"""The shard's sample cache: units are identical with and without it, and a sweep pays once.

Every registered kind runs as a shard does (all units of all items concurrently, on a scripted
engine that answers after a seeded delay), once with the cache and once without; each unit's
decision, attributed tokens and calls must be the same. The cost: with the cache, the engine
generates each distinct request once, and the records account for exactly what it generated.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from strategy_helpers import CountingEngine, question

from ttscale.engines.base import Completion, Generation, SamplingSpec
from ttscale.engines.config import ScriptedEngineConfig
from ttscale.prompts import PROFILES, ModelProfile
from ttscale.records import UnitKey, UnitResult
from ttscale.runner import expand_units, run_shard_units
from ttscale.service import PartWriter, ShardLayout, read_parts
from ttscale.storage import LocalStore
from ttscale.strategies import registry
from ttscale.strategies.config import (
    AdaptiveConsistencyConfig,
    BestOfNConfig,
    BudgetForcingConfig,
    ESCConfig,
    MajorityConfig,
    OptScaleConfig,
    RefinementConfig,
    WeightedVoteConfig,
)
from ttscale.strategies.kinds.confidence_stop import ConfidenceStopConfig
from ttscale.strategies.kinds.deepconf import DeepConfConfig
from ttscale.strategies.kinds.probe_stop import ProbeStopConfig
from ttscale.strategies.kinds.verifier_gate import VerifierGateConfig
from ttscale.strategies.sample_cache import SampleCache, request_digest

PLAIN = PROFILES["plain"]
# The scripted thinking is filler words: with one of them as the delimiter, thinking often ends
# early, so budget forcing meets extensions and "model_stopped" as well as the cap.
EARLY_STOP = dataclasses.replace(PLAIN, name="plain-early-stop", end_of_thinking="carry")
QUESTIONS = [question(i) for i in range(4)]

SWEEPS: dict[str, list[Any]] = {
    "majority": [MajorityConfig(n=[1, 2, 4, 8])],
    "best_of_n": [BestOfNConfig(n=[1, 2, 4])],
    "weighted_vote": [WeightedVoteConfig(n=[2, 4])],
    "adaptive_consistency": [AdaptiveConsistencyConfig(n=[4, 8], threshold=0.8)],
    "esc": [ESCConfig(n=[4, 8], window=2)],
    "optscale": [OptScaleConfig(n=[4, 8], k=2, s_star=0.5)],
    "refinement": [RefinementConfig(rounds=[1, 2])],
    "budget_forcing": [BudgetForcingConfig(budgets_tokens=[16, 32, 64, 128, 256])],
    "probe_stop": [ProbeStopConfig(budgets_tokens=[32, 64, 128], probe_every=16, k=2)],
    # Online: the warm-up and the traces streamed under its bar are shared by both budgets.
    "deepconf": [DeepConfConfig(n=[6, 12], warmup=4, window=12, keep_percent=50, top_logprobs=3)],
    "verifier_gate": [VerifierGateConfig(n=[4, 8], warmup=2, percentile=60)],
    "confidence_stop": [ConfidenceStopConfig(budgets_tokens=[32, 64, 128], probe_every=16)],
}
ATTRIBUTED = (
    "sample_index", "call_index", "phase", "prompt_tokens", "completion_tokens",
    "thinking_tokens", "answer_tokens", "finish_reason", "stop_reason", "used", "seed",
    "cumulative_logprob", "score", "extracted_answer", "completion_text",
)  # fmt: skip
"""A call's fields that must not depend on the cache (not latency, nor the cache's own)."""


class DigestEngine(CountingEngine):
    """A counting scripted engine that answers after a seeded delay and notes each request."""

    def __init__(self) -> None:
        super().__init__(accuracy=0.6, vary_logprobs=True)
        self.config = ScriptedEngineConfig(accuracy=0.6, delay_s=0.002)
        self.digests: list[str] = []

    async def generate(self, prompt_ids: Sequence[int], spec: SamplingSpec) -> Generation:
        self.digests.append(request_digest(prompt_ids, spec))
        return await super().generate(prompt_ids, spec)


class Sink:
    def __init__(self) -> None:
        self.results: list[UnitResult] = []

    def add(self, result: UnitResult) -> None:
        self.results.append(result)

    def flush(self) -> None:
        return None


def run_shard(
    configs: Sequence[Any],
    cache: SampleCache | None,
    profile: ModelProfile = PLAIN,
    engine: DigestEngine | None = None,
    skip: set[UnitKey] | None = None,
    finished: Sequence[UnitResult] = (),
) -> tuple[dict[UnitKey, UnitResult], DigestEngine]:
    engine = engine or DigestEngine()
    sink = Sink()
    asyncio.run(
        run_shard_units(
            engine,
            profile,
            QUESTIONS,
            expand_units(configs),
            run_id="run-cache",
            run_seed=7,
            skip=skip or set(),
            writer=sink,
            cache=cache,
            finished=finished,
        )
    )
    return {r.key: r for r in sink.results}, engine


def comparable(result: UnitResult) -> dict[str, Any]:
    """What a unit's result must be whatever the cache: decision, tokens, calls in order."""
    record = result.to_json()
    calls = sorted(record.pop("calls"), key=lambda c: (c["sample_index"], c["call_index"]))
    record["calls"] = [{name: c[name] for name in ATTRIBUTED} for c in calls]
    record["attributed_tokens"] = result.completion_tokens
    return record


def generated(results: dict[UnitKey, UnitResult]) -> int:
    return sum(r.generated_tokens for r in results.values())


def test_every_registered_kind_has_a_sweep() -> None:
    assert set(SWEEPS) == set(registry.kinds())


@pytest.mark.parametrize("kind", sorted(SWEEPS))
def test_units_are_identical_with_and_without_the_cache(kind: str) -> None:
    plain, plain_engine = run_shard(SWEEPS[kind], None)
    cached, cached_engine = run_shard(SWEEPS[kind], SampleCache())
    assert plain.keys() == cached.keys()
    for key in plain:
        assert plain[key].error is None, plain[key].error
        assert comparable(cached[key]) == comparable(plain[key]), key
    # Without the cache every call is generated; with it, each distinct request once, and the
    # records account for exactly what the engine generated.
    assert generated(plain) == plain_engine.produced_tokens
    assert generated(cached) == cached_engine.produced_tokens
    assert len(set(cached_engine.digests)) == len(cached_engine.digests)
    assert cached_engine.produced_tokens <= plain_engine.produced_tokens


def test_budget_forcing_with_extensions_is_identical_with_and_without_the_cache() -> None:
    configs = [BudgetForcingConfig(budgets_tokens=[24, 48, 96, 192], extensions=2)]
    plain, _ = run_shard(configs, None, EARLY_STOP)
    cached, engine = run_shard(configs, SampleCache(), EARLY_STOP)
    stops = {r.decision.stop_reason for r in plain.values()}
    assert stops == {"model_stopped", "budget_reached"}
    assert any(r.decision.detail["extensions"] for r in plain.values())
    for key in plain:
        assert comparable(cached[key]) == comparable(plain[key]), key
    assert generated(cached) == engine.produced_tokens < generated(plain)


def test_a_majority_sweep_costs_its_largest_unit() -> None:
    results, engine = run_shard([MajorityConfig(n=[1, 2, 4, 8])], SampleCache())
    largest = sum(r.completion_tokens for k, r in results.items() if k.budget == 8)
    attributed = sum(r.completion_tokens for r in results.values())
    assert generated(results) == engine.produced_tokens == largest < attributed
    assert engine.requests == 8 * len(QUESTIONS)
    # Each sample's generation is accounted on one call; the others say they were served.
    calls = [c for r in results.values() for c in r.calls]
    assert sum(not c.cached for c in calls) == 8 * len(QUESTIONS)


def test_budget_forcing_thinks_once_up_to_the_largest_budget() -> None:
    budgets = [16, 32, 64, 128, 256]
    results, engine = run_shard([BudgetForcingConfig(budgets_tokens=budgets)], SampleCache())
    thinking = [p for p in engine.prompts if not p.rstrip().endswith("Final Answer:")]
    # One thinking generation per item (the largest budget's); only forced answers are extra.
    assert len(thinking) == len(QUESTIONS)
    for item in QUESTIONS:
        units = [results[UnitKey(item.id, "budget_forcing", b)] for b in budgets]
        think = next(c for c in units[-1].calls if c.phase == "thinking")
        answers = {c.cache_key: c.completion_tokens for u in units for c in u.calls}
        answers.pop(think.cache_key)
        item_generated = sum(u.generated_tokens for u in units)
        assert item_generated <= think.completion_tokens + sum(
            n for key, n in answers.items() if key is not None
        )
        # A cut is what a request capped at B would return: the first B tokens, "length".
        for budget, unit in zip(budgets, units, strict=True):
            call = next(c for c in unit.calls if c.phase == "thinking")
            assert call.completion_tokens == min(budget, think.completion_tokens)
            assert think.completion_text.startswith(call.completion_text)
    assert generated(results) == engine.produced_tokens


def write_parts(tmp_path: Path, results: Sequence[UnitResult]) -> list[UnitResult]:
    """``results`` written as part objects and read back, as a resumed shard reads them."""
    store = LocalStore(tmp_path)
    shard = ShardLayout("runs/r/shards/00000")
    writer = PartWriter(store, shard, every_units=5)
    for result in results:
        writer.add(result)
    writer.flush()
    return [r for _, part in read_parts(store, shard) for r in part]


def test_a_resumed_shard_regenerates_nothing_a_finished_part_holds(tmp_path: Path) -> None:
    configs = [MajorityConfig(n=[1, 2, 4, 8]), BudgetForcingConfig(budgets_tokens=[16, 64])]
    full, _ = run_shard(configs, SampleCache())
    # The first attempt was killed after its parts held these units (the larger ones).
    kept = [r for k, r in full.items() if k.budget in (4, 64) or k.item_id == "q0"]
    finished = write_parts(tmp_path, kept)
    held = {(r.item_id, c.cache_key) for r in finished for c in r.calls}
    skip = {r.key for r in finished}
    resumed, engine = run_shard(configs, SampleCache(), skip=skip, finished=finished)
    assert resumed.keys() == full.keys() - skip
    for key, result in resumed.items():
        assert comparable(result) == comparable(full[key]), key
        for call in result.calls:
            if (key.item_id, call.cache_key) in held:
                assert call.cached and call.generated_tokens == 0
    assert engine.requests > 0  # majority@8's samples 4..7 were never generated
    assert generated(resumed) == engine.produced_tokens


def test_old_parts_without_cache_fields_still_read(tmp_path: Path) -> None:
    results, _ = run_shard([MajorityConfig(n=[2])], None)
    record = next(iter(results.values())).to_json()
    for call in record["calls"]:
        for name in ("cached", "generated_tokens", "cache_key", "token_ids"):
            del call[name]
    old = UnitResult.from_json(record)
    assert all(c.cached is False and c.cache_key is None for c in old.calls)
    assert old.generated_tokens == old.completion_tokens


def test_two_sweeps_of_one_kind_are_identical_with_and_without_the_cache() -> None:
    # Each sweep cuts its budgets from its own largest one (unit keys hold one B per kind).
    configs = [
        BudgetForcingConfig(budgets_tokens=[16, 64]),
        BudgetForcingConfig(budgets_tokens=[32, 128], answer_max_tokens=16),
    ]
    plain, _ = run_shard(configs, None)
    cached, engine = run_shard(configs, SampleCache())
    assert plain.keys() == cached.keys()
    for key in plain:
        assert comparable(cached[key]) == comparable(plain[key]), key
    assert generated(cached) == engine.produced_tokens


def test_concurrent_askers_share_one_generation_and_a_failure_is_not_kept() -> None:
    completion = Generation((Completion("4", (52,), "stop"),), 3, 0.0)
    runs: list[str] = []

    async def scenario() -> None:
        cache = SampleCache()

        async def fails() -> tuple[Generation, float]:
            runs.append("fails")
            await asyncio.sleep(0)
            raise RuntimeError("engine hiccup")

        async def works() -> tuple[Generation, float]:
            runs.append("works")
            await asyncio.sleep(0.01)
            return completion, 0.5

        key = ("q0", 0, "digest")
        for outcome in await asyncio.gather(
            cache.serve(key, fails), cache.serve(key, fails), return_exceptions=True
        ):
            assert isinstance(outcome, RuntimeError)
        assert key not in cache.entries
        served = await asyncio.gather(*(cache.serve(key, works) for _ in range(3)))
        assert [s.cached for s in served] == [False, True, True]
        assert all(s.generation is completion and s.latency_s == 0.5 for s in served)

    asyncio.run(scenario())
    assert runs == ["fails", "works"]
