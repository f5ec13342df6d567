"""Run one shard: every item × strategy × budget is a coroutine against one shared engine.

All units of a shard run concurrently, so vLLM batches across items continuously. Finished units
are checkpointed to object storage in create-only *part* objects; a re-run of the shard skips
every unit found in a part, so a crashed worker costs only its unflushed units.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from typing import Any

from ttscale.engines.base import Engine
from ttscale.errors import ConfigError, EngineDeadError, EngineUnreachableError, FatalError
from ttscale.grading import is_correct
from ttscale.prompts import ModelProfile
from ttscale.schemas import Question
from ttscale.storage import ObjectStore, join_key
from ttscale.strategies import STRATEGIES, StrategyContext
from ttscale.strategies.base import StopReason
from ttscale.strategies.config import StrategyConfig

UnitKey = tuple[str, str, int]
"""(item_id, strategy, budget)"""

ProgressFn = Callable[[int, int], None]
"""Called with (units finished, completion tokens) after each unit."""


@dataclass(frozen=True)
class Unit:
    strategy: str
    budget: int
    config: StrategyConfig


def expand_units(strategies: Iterable[StrategyConfig]) -> list[Unit]:
    """One unit per strategy × budget value."""
    return [Unit(s.kind, b, s) for s in strategies for b in s.budgets()]


async def run_unit(
    engine: Engine,
    profile: ModelProfile,
    question: Question,
    unit: Unit,
    run_id: str,
    run_seed: int,
) -> dict[str, Any]:
    """Run one strategy unit on one item; returns its result record (decision + every call).

    A failure other than a dead engine or a bad configuration fails this unit alone, with the
    reason recorded, whether a retry could fix it (``error_retryable``), and the calls it made
    before failing still counted. A dead engine and a configuration error end the shard.
    """
    ctx = StrategyContext(
        engine=engine,
        profile=profile,
        question=question,
        strategy=unit.strategy,
        budget=unit.budget,
        run_seed=run_seed,
    )
    record: dict[str, Any] = {
        "run_id": run_id,
        "item_id": question.id,
        "strategy": unit.strategy,
        "budget": unit.budget,
    }
    try:
        outcome = await STRATEGIES[unit.strategy](ctx, unit.config)
    except (EngineDeadError, ConfigError):
        raise
    except EngineUnreachableError as exc:
        # Nothing answered (a tokenizer call, or a request past its retries): the engine is gone.
        raise EngineDeadError(f"engine unreachable: {exc}") from exc
    except Exception as exc:  # one item's failure must not sink the batch
        record |= {
            "final_answer": None,
            "correct": False,
            "stop_reason": str(StopReason.ERROR),
            "samples_used": len({c.sample_index for c in ctx.calls}),
            "answered_language": None,
            "detail": {},
            "error": f"{type(exc).__name__}: {exc}",
            # Transient failures and bugs are worth another try; a refused request is not.
            "error_retryable": not isinstance(exc, FatalError),
        }
    else:
        record |= {
            "final_answer": outcome.final_answer,
            "correct": is_correct(outcome.final_answer, question.answer, question.dataset),
            "stop_reason": str(outcome.stop_reason),
            "samples_used": outcome.samples_used,
            "answered_language": outcome.answered_language,
            "detail": outcome.detail,
            "error": None,
        }
    record["calls"] = [asdict(c) for c in ctx.calls]
    return record


def unit_key(record: dict[str, Any]) -> UnitKey:
    return (record["item_id"], record["strategy"], int(record["budget"]))


def is_settled(record: dict[str, Any]) -> bool:
    """True when a unit needs no new attempt: it succeeded, or failed in a way no retry fixes.

    Records written before ``error_retryable`` existed count as retryable.
    """
    return record.get("error") is None or record.get("error_retryable") is False


class PartWriter:
    """Buffers finished unit records and flushes them as create-only part objects."""

    def __init__(
        self, store: ObjectStore, shard_prefix: str, every_units: int = 32, every_s: float = 15.0
    ) -> None:
        self.store = store
        self.shard_prefix = shard_prefix
        self.every_units = every_units
        self.every_s = every_s
        self._buffer: list[dict[str, Any]] = []
        self._last_flush = time.monotonic()
        self.parts_written: list[str] = []
        self.unsettled = 0
        """Records added that failed in a way a retry may fix (see ``is_settled``)."""

    def add(self, record: dict[str, Any]) -> None:
        self._buffer.append(record)
        self.unsettled += not is_settled(record)
        if (
            len(self._buffer) >= self.every_units
            or time.monotonic() - self._last_flush > self.every_s
        ):
            self.flush()

    def flush(self) -> None:
        if not self._buffer:
            return
        # Time-ordered, unique names: parts never overwrite each other, even from a zombie worker.
        key = join_key(
            self.shard_prefix, f"part-{time.time_ns():020d}-{uuid.uuid4().hex[:8]}.jsonl"
        )
        data = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in self._buffer).encode()
        self.store.write_bytes(key, data, content_type="application/x-ndjson", create_only=True)
        self.parts_written.append(key)
        self._buffer.clear()
        self._last_flush = time.monotonic()


def read_parts(store: ObjectStore, shard_prefix: str) -> list[tuple[str, list[dict[str, Any]]]]:
    """Every part object of a shard with its records, in write order."""
    parts = []
    for key in store.list(join_key(shard_prefix, "part-")):
        lines = store.read_bytes(key).decode().splitlines()
        parts.append((key, [json.loads(line) for line in lines if line.strip()]))
    return parts


async def run_shard_units(
    engine: Engine,
    profile: ModelProfile,
    questions: list[Question],
    units: list[Unit],
    *,
    run_id: str,
    run_seed: int,
    skip: set[UnitKey],
    writer: PartWriter,
    progress: ProgressFn | None = None,
) -> int:
    """Run every (question, unit) not in ``skip`` concurrently; returns how many ran."""
    done = 0
    tokens = 0

    async def one(question: Question, unit: Unit) -> None:
        nonlocal done, tokens
        record = await run_unit(engine, profile, question, unit, run_id, run_seed)
        writer.add(record)
        done += 1
        tokens += sum(c["completion_tokens"] for c in record["calls"])
        if progress:
            progress(done, tokens)

    todo = [(q, u) for q in questions for u in units if (q.id, u.strategy, u.budget) not in skip]
    try:
        await asyncio.gather(*(one(q, u) for q, u in todo))
    finally:
        # Whatever finished is kept, also when a dead engine aborts the rest.
        writer.flush()
    return len(todo)
