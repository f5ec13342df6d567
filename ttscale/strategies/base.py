"""What every strategy gets (a ``StrategyContext``) and returns (an ``Outcome``).

The context is the only way a strategy reaches the engine, so every generation call is recorded
exactly once, kept or discarded, with its token split into thinking and answer tokens.
"""

from __future__ import annotations

import dataclasses
import hashlib
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from ttscale.engines.base import Completion, EarlyStop, Engine, Generation, SamplingSpec
from ttscale.engines.base import generate_until as engine_generate_until
from ttscale.errors import EngineDeadError, EngineRequestError, EngineUnreachableError
from ttscale.prompts import ModelProfile
from ttscale.retry import async_retrying, policy_named
from ttscale.strategies.confidence import DEFAULT_TAIL, DEFAULT_WINDOW, confidence_stats
from ttscale.strategies.outcomes import CallRecord, ContinueReason, Outcome, StopReason
from ttscale.strategies.sample_cache import SampleCache, Served, prefix_cut, request_digest
from ttscale.strategies.scorers import Scorer, ScoringCost, make_scorer

__all__ = [
    "CallRecord", "ContinueReason", "Outcome", "StopReason", "StrategyContext", "derive_seed",
]  # fmt: skip

if TYPE_CHECKING:
    from ttscale.schemas import Question
    from ttscale.strategies.config import ScorerConfig


def derive_seed(*parts: object) -> int:
    """A stable 31-bit seed from the run seed and a sample's identity."""
    digest = hashlib.blake2b("\x1f".join(map(str, parts)).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") & 0x7FFFFFFF


class StrategyContext:
    """One item × strategy × budget: the engine, prompts, and the record of every call.

    ``scorers`` makes the scorer a config names (``scorers.make_scorer`` by default); replay
    passes one that serves stored scores, as its engine serves stored samples. ``cache`` is the
    shard's sample cache (the runner's), shared by every unit of the shard; None generates
    every request. ``stored_answers`` (completion text → answer) is what replay of an imported
    pool passes when the tool that made the pool extracted the answers: strategies then vote on
    those (``common.extractor``) instead of re-reading the text under ttscale's rules.
    """

    def __init__(
        self,
        *,
        engine: Engine,
        profile: ModelProfile,
        question: Question,
        strategy: str,
        budget: int,
        run_seed: int,
        scorers: Callable[[ScorerConfig], Scorer] = make_scorer,
        cache: SampleCache | None = None,
        stored_answers: Mapping[str, str | None] | None = None,
    ) -> None:
        self.engine = engine
        self.cache = cache
        self.stored_answers = stored_answers
        self.scorers = scorers
        self.profile = profile
        self.question = question
        self.strategy = strategy
        self.budget = budget
        self.run_seed = run_seed
        self.calls: list[CallRecord] = []
        self._next_call_index: dict[int, int] = {}
        self.confidence_window = DEFAULT_WINDOW
        """Window (tokens) of the recorded lowest group confidence; a strategy may set its own."""
        self.confidence_tail = DEFAULT_TAIL
        """Tokens of the recorded tail confidence."""

    def sample_seed(self, sample_index: int, call_index: int) -> int:
        # Independent of strategy and budget: sample i is the same draw in every unit of a run,
        # so fixed and adaptive strategies are compared on paired samples.
        return derive_seed(self.run_seed, self.question.id, sample_index, call_index)

    async def split_tokens(self, completion: Completion, phase: str) -> tuple[int, int]:
        """(thinking, answer) tokens of one completion.

        Thinking/extension calls are all thinking; answer calls, and the answer probes branched
        off a thinking prefix ("probe"), all answer; a free-running sample is split where the
        end-of-thinking delimiter first appears.
        """
        n = completion.num_tokens
        if phase in ("thinking", "extension"):
            return n, 0
        if phase in ("answer", "probe"):
            return 0, n
        delimiter = self.profile.end_of_thinking
        if delimiter not in completion.text:
            return n, 0
        # Smallest k whose decoded prefix holds the delimiter: monotone in k, so bisect.
        lo, hi = 1, n
        while lo < hi:
            mid = (lo + hi) // 2
            if delimiter in await self.engine.adecode(completion.token_ids[:mid]):
                hi = mid
            else:
                lo = mid + 1
        return lo, n - lo

    async def _engine_generate(
        self, prompt_ids: Sequence[int], spec: SamplingSpec, should_stop: EarlyStop | None = None
    ) -> tuple[Generation, float]:
        """One request to the engine, retried (policy "engine"), and its wall time."""
        started = time.perf_counter()
        try:
            async for attempt in async_retrying("engine", (EngineRequestError,)):
                with attempt:
                    if should_stop is None:
                        generation = await self.engine.generate(prompt_ids, spec)
                    else:
                        generation = await engine_generate_until(
                            self.engine, prompt_ids, spec, should_stop
                        )
        except EngineUnreachableError as error:
            # Nobody answered through every retry: the engine is gone, not this request.
            attempts = policy_named("engine").max_attempts()
            raise EngineDeadError(
                f"engine unreachable after {attempts} attempts: {error}"
            ) from error
        return generation, time.perf_counter() - started

    async def _served(
        self, prompt_ids: Sequence[int], spec: SamplingSpec, sample_index: int, longest: int | None
    ) -> tuple[Served, str | None]:
        """The request through the shard's cache (or the engine), and its digest."""
        if self.cache is None:
            generation, latency = await self._engine_generate(prompt_ids, spec)
            tokens = generation.completions[0].num_tokens
            return Served(generation, latency, False, tokens), None
        digest = request_digest(prompt_ids, spec)
        key = (self.question.id, sample_index, digest)
        if longest is not None and longest > spec.max_tokens:
            long_spec = dataclasses.replace(spec, max_tokens=longest)
            long_key = (self.question.id, sample_index, request_digest(prompt_ids, long_spec))
            served = await self.cache.serve_prefix(
                key,
                long_key,
                spec.max_tokens,
                lambda: self._engine_generate(prompt_ids, long_spec),
                lambda completion, cap: prefix_cut(self.engine, completion, long_spec, cap),
            )
            if served is not None:
                return served, digest
        return await self.cache.serve(key, lambda: self._engine_generate(prompt_ids, spec)), digest

    async def generate(
        self,
        prompt_ids: Sequence[int],
        spec: SamplingSpec,
        *,
        sample_index: int,
        phase: str,
        extract: Callable[[str], str | None] | None = None,
        longest: int | None = None,
    ) -> Completion:
        """Generate one completion (``spec.n`` must be 1) and record it.

        Recoverable engine errors are retried (the "engine" policy of ``ttscale.retry``); a failed
        attempt returned no tokens, so nothing is recorded for it. With the shard's cache, a
        request another unit already made is served from it; ``longest`` says the same request
        is also made with ``max_tokens=longest`` (a larger budget of the sweep), so this one may
        be served as that one's first ``spec.max_tokens`` tokens where the engine can tell that
        this is exactly what it would have generated.
        """
        spec, call_index = self._seeded(spec, sample_index)
        served, digest = await self._served(prompt_ids, spec, sample_index, longest)
        return await self._record(served, spec, (sample_index, call_index), phase, extract, digest)

    async def generate_until(
        self,
        prompt_ids: Sequence[int],
        spec: SamplingSpec,
        should_stop: EarlyStop,
        *,
        sample_index: int,
        phase: str,
        extract: Callable[[str], str | None] | None = None,
        rule: str | None = None,
    ) -> Completion:
        """``generate``, stopped early where ``should_stop`` fires (``engines.base.
        generate_until``: streamed where the engine can, else generated whole and all counted).

        Where a trace stops depends on the rule as well as the request, so the shard's cache
        serves it only to a call naming the same ``rule`` (a string that determines
        ``should_stop`` exactly, e.g. its threshold and window); with none, it is not cached.
        """
        spec, call_index = self._seeded(spec, sample_index)
        if self.cache is None or rule is None:
            generation, latency = await self._engine_generate(prompt_ids, spec, should_stop)
            tokens = generation.completions[0].num_tokens
            served, digest = Served(generation, latency, False, tokens), None
        else:
            digest = f"{request_digest(prompt_ids, spec)}:{rule}"
            served = await self.cache.serve(
                (self.question.id, sample_index, digest),
                lambda: self._engine_generate(prompt_ids, spec, should_stop),
            )
        return await self._record(served, spec, (sample_index, call_index), phase, extract, digest)

    def _seeded(self, spec: SamplingSpec, sample_index: int) -> tuple[SamplingSpec, int]:
        """``spec`` for the next call of ``sample_index`` (one completion, with its seed), and
        that call's index."""
        if spec.n != 1:
            raise ValueError("StrategyContext.generate draws one completion per call")
        call_index = self._next_call_index.get(sample_index, 0)
        self._next_call_index[sample_index] = call_index + 1
        seed = spec.seed if spec.seed is not None else self.sample_seed(sample_index, call_index)
        return dataclasses.replace(spec, n=1, seed=seed), call_index

    async def _record(
        self,
        served: Served,
        spec: SamplingSpec,
        call: tuple[int, int],
        phase: str,
        extract: Callable[[str], str | None] | None,
        digest: str | None,
    ) -> Completion:
        """Record the call ``call`` (sample index, call index) that got ``served``; return its
        completion."""
        sample_index, call_index = call
        generation = served.generation
        completion = generation.completions[0]
        thinking, answer = await self.split_tokens(completion, phase)
        stats = confidence_stats(
            completion.top_logprobs, self.confidence_window, self.confidence_tail
        )
        self.calls.append(
            CallRecord(
                sample_index=sample_index,
                call_index=call_index,
                phase=phase,
                prompt_tokens=generation.prompt_tokens,
                completion_tokens=completion.num_tokens,
                thinking_tokens=thinking,
                answer_tokens=answer,
                finish_reason=completion.finish_reason,
                stop_reason=None if completion.stop_reason is None else str(completion.stop_reason),
                latency_s=served.latency_s,
                used=True,
                seed=spec.seed,
                cumulative_logprob=completion.cumulative_logprob,
                score=None,
                extracted_answer=extract(completion.text) if extract else None,
                completion_text=completion.text,
                cached=served.cached,
                generated_tokens=served.generated_tokens,
                cache_key=digest,
                token_ids=None if digest is None else list(completion.token_ids),
                mean_confidence=stats.mean_confidence if stats else None,
                lowest_group_confidence=stats.lowest_group_confidence if stats else None,
                tail_confidence=stats.tail_confidence if stats else None,
            )
        )
        return completion

    def record_for(self, sample_index: int) -> list[CallRecord]:
        return [c for c in self.calls if c.sample_index == sample_index]

    def mark_discarded(self, sample_index: int) -> None:
        """The strategy threw this sample's output away (its tokens still count)."""
        for call in self.record_for(sample_index):
            call.used = False

    def set_score(self, sample_index: int, score: float) -> None:
        for call in self.record_for(sample_index):
            call.score = score

    def record_scoring(self, sample_index: int, score: float, cost: ScoringCost) -> None:
        """Record what scoring sample ``sample_index`` cost, as one call of phase "score".

        Its prompt tokens are what the scoring model read; it generates nothing (0 completion
        and generated tokens), so the ledger's prompt-token totals include scoring, and the
        completion-token axis of the report does not.
        """
        call_index = self._next_call_index.get(sample_index, 0)
        self._next_call_index[sample_index] = call_index + 1
        self.calls.append(
            CallRecord(
                sample_index=sample_index,
                call_index=call_index,
                phase="score",
                prompt_tokens=cost.prompt_tokens,
                completion_tokens=0,
                thinking_tokens=0,
                answer_tokens=0,
                finish_reason="stop",
                stop_reason=None,
                latency_s=cost.latency_s,
                used=True,
                seed=None,
                cumulative_logprob=None,
                score=score,
                extracted_answer=None,
                completion_text="",
                generated_tokens=0,
            )
        )


Strategy = Callable[[StrategyContext, Any], Awaitable[Outcome]]
"""Every strategy: ``async def name(ctx, config) -> Outcome``; budget is ``ctx.budget``."""
