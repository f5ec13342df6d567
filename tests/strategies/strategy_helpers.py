"""Strategy-test helpers: scripted engines that count what they produce, and a unit runner."""

from __future__ import annotations

import asyncio
import dataclasses
import random
from collections.abc import Sequence
from typing import Any

from ttscale.engines.base import Completion, EarlyStop, Generation, SamplingSpec
from ttscale.engines.config import ScriptedEngineConfig
from ttscale.engines.scripted import ScriptedEngine
from ttscale.errors import EngineRequestError
from ttscale.prompts import PROFILES
from ttscale.runner import Unit, attempt_unit
from ttscale.schemas import Question

PROFILE = PROFILES["smollm2"]
RUN_SEED = 7


class CountingEngine(ScriptedEngine):
    """A scripted engine that keeps every prompt and the tokens it produced.

    ``fail_every=k`` makes every k-th attempt fail recoverably before producing anything.
    ``vary_logprobs`` gives each completion a seeded mean logprob in [-1.5, 0] instead of the
    constant -0.1, so scores differ between samples. ``script`` names the engine's script.
    """

    def __init__(
        self,
        accuracy: float = 0.6,
        vary_logprobs: bool = False,
        fail_every: int = 0,
        script: str = "arithmetic",
    ) -> None:
        super().__init__(ScriptedEngineConfig(accuracy=accuracy, script=script))
        self.vary_logprobs = vary_logprobs
        self.every_kth_fails = fail_every
        self.attempts = 0
        self.prompts: list[str] = []
        self.produced_tokens = 0

    async def generate(self, prompt_ids: Sequence[int], spec: SamplingSpec) -> Generation:
        self.attempts += 1
        if self.every_kth_fails and self.attempts % self.every_kth_fails == 0:
            raise EngineRequestError("injected transient failure")
        generation = await super().generate(prompt_ids, spec)
        self.prompts.append(self.decode(prompt_ids))
        if self.vary_logprobs:
            mean = -1.5 * random.Random(spec.seed).random()
            generation = dataclasses.replace(
                generation,
                completions=tuple(
                    dataclasses.replace(c, cumulative_logprob=mean * c.num_tokens)
                    for c in generation.completions
                ),
            )
        self.produced_tokens += sum(c.num_tokens for c in generation.completions)
        return generation

    async def generate_until(
        self, prompt_ids: Sequence[int], spec: SamplingSpec, should_stop: EarlyStop
    ) -> Generation:
        """Counts what a streaming engine would have generated: a stopped trace's tokens up to
        its stop (the scripted engine generates it whole, then cuts it as vLLM's abort would)."""
        whole = await self.generate(prompt_ids, spec)
        stopped = self.stopped(whole, should_stop)
        self.produced_tokens -= whole.completions[0].num_tokens - stopped.completions[0].num_tokens
        return stopped

    def prefix_completion(
        self, completion: Completion, spec: SamplingSpec, max_tokens: int
    ) -> Completion | None:
        """The scripted cut, with this engine's own cumulative logprob (see ``vary_logprobs``)."""
        cut = super().prefix_completion(completion, spec, max_tokens)
        if cut is None or not self.vary_logprobs or cut is completion:
            return cut
        mean = -1.5 * random.Random(spec.seed).random()
        return dataclasses.replace(cut, cumulative_logprob=mean * cut.num_tokens)


def question(index: int = 0, language: str = "en") -> Question:
    a, b = 11 + index, 20 + 2 * index
    return Question(
        id=f"q{index}",
        question=f"What is {a} plus {b}?",
        answer=str(a + b),
        language=language,
        dataset="arithmetic",
    )


def run(
    engine: CountingEngine, config: Any, budget: int, item: Question | None = None
) -> dict[str, Any]:
    """One unit's record, run with ``asyncio.run`` on the scripted engine."""
    unit = Unit(config.kind, budget, config)
    result = asyncio.run(
        attempt_unit(engine, PROFILE, item or question(), unit, "run-test", RUN_SEED)
    )
    return result.to_json()


def assert_accounted(record: dict[str, Any], engine: CountingEngine) -> None:
    """Every generation call recorded once: tokens and request counts match the engine's."""
    assert record["error"] is None, record["error"]
    calls = record["calls"]
    assert sum(c["completion_tokens"] for c in calls) == engine.produced_tokens
    assert len(calls) == len(engine.prompts)
    for c in calls:
        assert c["completion_tokens"] == c["thinking_tokens"] + c["answer_tokens"]
    keys = [(c["sample_index"], c["call_index"]) for c in calls]
    assert len(set(keys)) == len(keys)


def truncnorm_mle(scores: Sequence[float]) -> tuple[float, float]:
    """(μ̂, σ̂) of TruncNormal(μ, σ) on [0, 1], fitted by scipy alone: an oracle for OptScale.

    Maximises scipy.stats.truncnorm's log-likelihood over μ ∈ [−10, 11], σ ∈ [1e-3, 10]
    (Nelder-Mead on (μ, ln σ) from several starts), independently of ttscale's own fit.
    """
    import math

    import numpy as np
    from scipy import optimize, stats

    x = np.asarray(scores)

    def negative_loglik(point: np.ndarray) -> float:
        mu, sigma = float(point[0]), math.exp(point[1])
        a, b = -mu / sigma, (1.0 - mu) / sigma
        return -float(stats.truncnorm.logpdf(x, a, b, loc=mu, scale=sigma).sum())

    bounds = [(-10.0, 11.0), (math.log(1e-3), math.log(10.0))]
    fits = [
        optimize.minimize(
            negative_loglik,
            (start, math.log(sd)),
            method="Nelder-Mead",
            bounds=bounds,
            options={"xatol": 1e-10, "fatol": 1e-13, "maxiter": 20_000},
        )
        for start in (float(x.mean()), 0.5)
        for sd in (0.05, 0.3)
    ]
    mu, log_sigma = min(fits, key=lambda fit: fit.fun).x
    return float(mu), math.exp(float(log_sigma))
