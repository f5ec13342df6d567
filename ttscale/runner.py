"""Run one shard: every item × strategy × budget is a coroutine against one shared engine.

All units of a shard run concurrently, so vLLM batches across items continuously. Each finished
unit's ``UnitResult`` goes to a ``ResultSink``; the service's sink checkpoints them to object
storage, so a crashed worker costs only its unflushed units.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Callable, Collection, Iterable, Iterator
from dataclasses import dataclass
from typing import Protocol, cast

from ttscale.engines.base import Completion, Engine, FinishReason, Generation
from ttscale.errors import ConfigError, EngineDeadError, EngineUnreachableError, FatalError
from ttscale.grading import is_correct
from ttscale.prompts import ModelProfile
from ttscale.records import UnitDecision, UnitError, UnitKey, UnitResult
from ttscale.schemas import Question
from ttscale.strategies import STRATEGIES, StrategyContext
from ttscale.strategies.config import StrategyConfig
from ttscale.strategies.sample_cache import CacheKey, SampleCache

ProgressFn = Callable[[int, int], None]
"""Called with (units finished, completion tokens) after each unit."""


@dataclass(frozen=True)
class Unit:
    strategy: str
    budget: int
    config: StrategyConfig

    def key(self, question: Question) -> UnitKey:
        return UnitKey(question.id, self.strategy, self.budget)


def expand_units(strategies: Iterable[StrategyConfig]) -> list[Unit]:
    """One unit per strategy × budget value."""
    return [Unit(s.kind, b, s) for s in strategies for b in s.budgets()]


class ResultSink(Protocol):
    """Where a shard's finished units go (``ttscale.service.parts.PartWriter``)."""

    def add(self, result: UnitResult) -> None: ...

    def flush(self) -> None: ...


async def attempt_unit(
    engine: Engine,
    profile: ModelProfile,
    question: Question,
    unit: Unit,
    run_id: str,
    run_seed: int,
    cache: SampleCache | None = None,
) -> UnitResult:
    """Run one strategy unit on one item; returns its result (decision + every call).

    A failure other than a dead engine or a bad configuration fails this unit alone, with the
    reason recorded, whether a retry could fix it, and the calls it made before failing still
    counted. A dead engine and a configuration error end the shard.
    """
    ctx = StrategyContext(
        engine=engine,
        profile=profile,
        question=question,
        strategy=unit.strategy,
        budget=unit.budget,
        run_seed=run_seed,
        cache=cache,
    )
    error: UnitError | None = None
    try:
        outcome = await STRATEGIES[unit.strategy](ctx, unit.config)
    except (EngineDeadError, ConfigError):
        raise
    except EngineUnreachableError as exc:
        # Nothing answered (a tokenizer call, or a request past its retries): the engine is gone.
        raise EngineDeadError(f"engine unreachable: {exc}") from exc
    except Exception as exc:  # one item's failure must not sink the batch
        decision = UnitDecision.failed(samples_used=len({c.sample_index for c in ctx.calls}))
        # Transient failures and bugs are worth another try; a refused request is not.
        error = UnitError(f"{type(exc).__name__}: {exc}", not isinstance(exc, FatalError))
    else:
        decision = UnitDecision(
            final_answer=outcome.final_answer,
            correct=is_correct(outcome.final_answer, question.answer, question.dataset),
            stop_reason=str(outcome.stop_reason),
            samples_used=outcome.samples_used,
            answered_language=outcome.answered_language,
            detail=outcome.detail,
        )
    return UnitResult(
        run_id, question.id, unit.strategy, unit.budget, decision, list(ctx.calls), error
    )


async def run_shard_units(
    engine: Engine,
    profile: ModelProfile,
    questions: list[Question],
    units: list[Unit],
    *,
    run_id: str,
    run_seed: int,
    skip: Collection[UnitKey],
    writer: ResultSink,
    progress: ProgressFn | None = None,
    cache: SampleCache | None = None,
    finished: Iterable[UnitResult] = (),
) -> int:
    """Run every (question, unit) not in ``skip`` concurrently; returns how many ran.

    ``cache`` (one per shard) serves a request that another unit made already; it is first
    refilled from the ``finished`` records of earlier attempts, so a resumed shard regenerates
    none of their samples.
    """
    done = 0
    tokens = 0
    todo = [(q, u) for q in questions for u in units if u.key(q) not in skip]
    left = Counter(q.id for q, _ in todo)
    if cache is not None:
        cache.restore(cached_generations(r for r in finished if r.item_id in left))

    async def one(question: Question, unit: Unit) -> None:
        nonlocal done, tokens
        try:
            result = await attempt_unit(engine, profile, question, unit, run_id, run_seed, cache)
        finally:
            left[question.id] -= 1
            if cache is not None and not left[question.id]:
                cache.forget(question.id)
        writer.add(result)
        done += 1
        tokens += result.completion_tokens
        if progress:
            progress(done, tokens)

    try:
        await asyncio.gather(*(one(q, u) for q, u in todo))
    finally:
        # Whatever finished is kept, also when a dead engine aborts the rest.
        writer.flush()
    return len(todo)


def cached_generations(
    results: Iterable[UnitResult],
) -> Iterator[tuple[CacheKey, Generation, float]]:
    """The generations recorded in ``results``, as a shard's cache holds them.

    Only calls recorded with the cache on carry their request digest and token ids; older
    records (and runs without the cache) give nothing. Per-token logprobs are not kept in parts,
    so a restored completion has none (its cumulative logprob is kept); no strategy reads them.
    """
    for result in results:
        for call in result.calls:
            if call.cache_key is None or call.token_ids is None:
                continue
            if call.mean_confidence is not None:
                # Asked with top-k logprobs, which parts do not keep: a resumed shard regenerates.
                continue
            completion = Completion(
                text=call.completion_text,
                token_ids=tuple(call.token_ids),
                finish_reason=cast(FinishReason, call.finish_reason),
                stop_reason=call.stop_reason,
                cumulative_logprob=call.cumulative_logprob,
            )
            key = (result.item_id, call.sample_index, call.cache_key)
            yield key, Generation((completion,), call.prompt_tokens, call.latency_s), call.latency_s
