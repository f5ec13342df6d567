"""DeepConf online on real vLLM (CPU): aborted traces really stop early, and what is recorded
is exactly what vLLM generated.

The tiny random model's confidences are noise; with η = 10 % the bar is the 90th percentile of
the warm-up's lowest group confidence, so most later traces fall below it within a few windows.
A whole unit often stops at once (one warm-up trace votes, so its answer has all the votes);
the abort test therefore draws later traces itself, through the strategy's own ``TraceDrawer``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

import pytest
from vllm_units import PLAIN, QUESTIONS, RUN_SEED, SpyEngine

from ttscale.engines.base import EarlyStop, Generation, SamplingSpec
from ttscale.runner import Unit, attempt_unit
from ttscale.strategies.base import StrategyContext
from ttscale.strategies.confidence import keep_threshold
from ttscale.strategies.kinds.deepconf import DeepConfConfig, TraceDrawer

pytest.importorskip("vllm", reason="vllm is not installed (pip install -e '.[cpu]')")

pytestmark = pytest.mark.slow

CONFIG = DeepConfConfig(
    n=[8],
    warmup=3,
    keep_percent=10.0,
    window=4,
    consensus=1.0,
    max_tokens=48,
    temperature=1.0,
    top_logprobs=5,
)


class StreamingSpy(SpyEngine):
    """``SpyEngine`` that also streams: every request and what vLLM handed back for it."""

    async def generate_until(
        self, prompt_ids: Sequence[int], spec: SamplingSpec, should_stop: EarlyStop
    ) -> Generation:
        generation: Generation = await self.inner.generate_until(prompt_ids, spec, should_stop)
        self.requests.append((list(prompt_ids), spec, generation))
        return generation


@pytest.fixture(scope="module")
def deepconf_run(shared_engine: Any) -> tuple[dict[str, Any], StreamingSpy]:
    spy = StreamingSpy(shared_engine.engine)
    unit = Unit(CONFIG.kind, 8, CONFIG)
    result = shared_engine.run(
        attempt_unit(spy, PLAIN, QUESTIONS[0], unit, "vllm-deepconf", RUN_SEED)
    )
    return result.to_json(), spy


def test_recorded_calls_are_what_vllm_generated(
    deepconf_run: tuple[dict[str, Any], StreamingSpy],
) -> None:
    record, spy = deepconf_run
    assert record["error"] is None, record["error"]
    calls = sorted(record["calls"], key=lambda c: c["sample_index"])
    assert len(calls) == len(spy.requests) == record["samples_used"]
    by_seed = {spec.seed: generation.completions[0] for _, spec, generation in spy.requests}
    for call in calls:
        completion = by_seed[call["seed"]]
        assert call["completion_tokens"] == completion.num_tokens
        assert call["completion_text"] == completion.text
        assert call["finish_reason"] == completion.finish_reason
    assert sum(c["completion_tokens"] for c in calls) == sum(
        generation.completions[0].num_tokens for _, _, generation in spy.requests
    )


def _drawn(shared_engine: Any) -> tuple[StrategyContext, StreamingSpy, float]:
    """Three warm-up traces, then five streamed under their bar, recorded in one context."""
    spy = StreamingSpy(shared_engine.engine)
    ctx = StrategyContext(
        engine=spy,
        profile=PLAIN,
        question=QUESTIONS[1],
        strategy="deepconf",
        budget=8,
        run_seed=RUN_SEED,
    )
    drawer = TraceDrawer(ctx, CONFIG)

    async def draw() -> float:
        warm = [await drawer.draw(i) for i in range(3)]
        bar = keep_threshold([t.stats.lowest_group_confidence for t in warm], 10.0)
        for index in range(3, 8):
            await drawer.draw_until(index, bar)
        return bar

    return ctx, spy, shared_engine.run(draw())


def test_aborted_traces_stopped_early_inside_vllm(shared_engine: Any) -> None:
    ctx, spy, bar = _drawn(shared_engine)
    calls = {call.seed: call for call in ctx.calls}
    # What is recorded is what vLLM handed back, call for call.
    assert len(ctx.calls) == len(spy.requests) == 8
    for _, spec, generation in spy.requests:
        (completion,) = generation.completions
        call = calls[spec.seed]
        assert call.completion_tokens == completion.num_tokens
        assert call.completion_text == completion.text
        assert call.finish_reason == completion.finish_reason
    aborted = [
        (prompt, spec, generation.completions[0])
        for prompt, spec, generation in spy.requests
        if generation.completions[0].finish_reason == "abort"
    ]
    assert aborted, "the bar at the 90th percentile should stop some trace"
    for prompt, spec, completion in aborted:
        # The same seeded request without the stop runs on: the aborted trace is its prefix,
        # cut right after the window that fell below the bar (plus tokens of that same step).
        whole_spec = dataclasses.replace(spec, max_tokens=CONFIG.max_tokens)
        (whole,) = shared_engine.run(shared_engine.engine.generate(prompt, whole_spec)).completions
        assert completion.early_stop_at is not None
        assert CONFIG.window <= completion.early_stop_at <= completion.num_tokens
        assert completion.num_tokens < whole.num_tokens
        assert completion.token_ids == whole.token_ids[: completion.num_tokens]
        # The window that stopped it is below the bar.
        assert calls[spec.seed].lowest_group_confidence < bar
    assert not shared_engine.engine._llm.output_processor.has_unfinished_requests()
