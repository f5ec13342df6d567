"""The sample cache on real vLLM: units identical with and without it, and the sweep paid once.

Budget forcing's smaller budgets are served as cuts of the largest budget's thinking: this checks
on a real engine that a seeded request capped at B returns exactly the first B tokens (text and
cumulative logprob included) of the same request with a larger cap.

The engine runs in deterministic mode (one sequence per step, no prefix caching). Batched, two
identical requests may already differ in their logprobs' last digits (and then in a sampled
token), with or without the cache: the comparison would measure vLLM's batching, not the cache.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytest
from test_sample_cache import QUESTIONS, Sink, comparable
from vllm_units import EARLY_STOP, PLAIN, RUN_SEED, SpyEngine

from ttscale.engines.base import Completion, SamplingSpec
from ttscale.prompts import ModelProfile
from ttscale.records import UnitKey, UnitResult
from ttscale.runner import expand_units, run_shard_units
from ttscale.strategies.config import BudgetForcingConfig, MajorityConfig
from ttscale.strategies.sample_cache import SampleCache

pytest.importorskip("vllm", reason="vllm is not installed (pip install -e '.[cpu]')")

pytestmark = pytest.mark.slow

SAMPLE = {"max_tokens": 16, "temperature": 1.0}


class CutSpy(SpyEngine):
    """The spy, with the engine's exact cuts (the cache asks the engine it is given)."""

    def prefix_completion(
        self, completion: Completion, spec: SamplingSpec, max_tokens: int
    ) -> Completion | None:
        result: Completion | None = self.inner.prefix_completion(completion, spec, max_tokens)
        return result


def shard(
    runner: Any, configs: Sequence[Any], profile: ModelProfile, cache: SampleCache | None
) -> tuple[dict[UnitKey, UnitResult], CutSpy]:
    spy, sink = CutSpy(runner.engine), Sink()
    runner.run(
        run_shard_units(
            spy,
            profile,
            QUESTIONS[:2],
            expand_units(configs),
            run_id="vllm-cache",
            run_seed=RUN_SEED,
            skip=set(),
            writer=sink,
            cache=cache,
        )
    )
    return {r.key: r for r in sink.results}, spy


@pytest.mark.parametrize(
    ("profile", "configs"),
    [
        (
            PLAIN,
            [
                MajorityConfig(n=[1, 2, 4], **SAMPLE),
                BudgetForcingConfig(budgets_tokens=[32, 64], answer_max_tokens=8),
            ],
        ),
        # Thinking ends early ("e" every few tokens): whole completions and extensions.
        (
            EARLY_STOP,
            [
                BudgetForcingConfig(
                    budgets_tokens=[12, 24, 48], extensions=2, temperature=1.0, answer_max_tokens=8
                )
            ],
        ),
    ],
    ids=["majority+budget_forcing", "budget_forcing_extensions"],
)
def test_units_are_identical_with_and_without_the_cache_on_vllm(
    deterministic_engine: Any, profile: ModelProfile, configs: list[Any]
) -> None:
    plain, plain_spy = shard(deterministic_engine, configs, profile, None)
    cached, cached_spy = shard(deterministic_engine, configs, profile, SampleCache())
    assert plain.keys() == cached.keys()
    for key in plain:
        assert plain[key].error is None, plain[key].error
        want, got = comparable(plain[key]), comparable(cached[key])
        for want_call, got_call in zip(want.pop("calls"), got.pop("calls"), strict=True):
            diff = {k: (v, got_call[k]) for k, v in want_call.items() if got_call[k] != v}
            assert not diff, (key, want_call["call_index"], diff)
        assert got == want, key
    produced = sum(g.completions[0].num_tokens for _, _, g in cached_spy.requests)
    assert sum(r.generated_tokens for r in cached.values()) == produced
    assert len(cached_spy.requests) < len(plain_spy.requests)
    if profile is PLAIN:
        # The random model never ends its thinking: each item thinks once, up to 64 tokens, and
        # majority@4's four samples serve majority@1 and @2.
        thinking = [s for _, s, _ in cached_spy.requests if s.stop]
        answers = [s for s in thinking if s.max_tokens == 8]
        assert len(thinking) - len(answers) == len(QUESTIONS[:2])
        samples = [s for _, s, _ in cached_spy.requests if not s.stop]
        assert len(samples) == 4 * len(QUESTIONS[:2])
