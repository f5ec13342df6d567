"""Replay strategies on a stored sample pool: the live strategy code, served by the replay engine.

A ``SamplePool`` holds, per item, the independent samples (phase "sample") of an earlier large-N
run. ``replay`` runs the registered strategy coroutine itself, through a ``StrategyContext``
whose engine is a ``ReplayEngine`` serving that item's pool samples (in recorded order or in a
seeded permutation) and whose scorer serves their stored scores. Tokens are the sum of the calls
the strategy made (drawn, including discarded ones), counted as a live run counts them.
Sequential strategies (budget forcing, refinement) condition on their own outputs and cannot be
replayed from independent samples.
"""

from __future__ import annotations

import asyncio
import math
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from ttscale.engines.base import Completion
from ttscale.engines.replay import PoolExhaustedError, ReplayEngine, StoredCompletion
from ttscale.grading import is_correct
from ttscale.prompts import PROFILES
from ttscale.strategies import registry
from ttscale.strategies.base import StrategyContext, derive_seed
from ttscale.strategies.config import ScorerConfig, StrategyConfigBase
from ttscale.strategies.scorers import Scorer, make_scorer

if TYPE_CHECKING:
    from ttscale.schemas import Question

Order = Literal["recorded", "permutation"]

__all__ = [
    "Order",
    "PoolExhaustedError",
    "PoolItem",
    "PoolSample",
    "ReplayResult",
    "SamplePool",
    "draw_order",
    "replay",
    "replay_item",
    "unbiased_majority_at_k",
]

# Scorers that need nothing but the completion itself, so replay can run them on stored samples.
_OFFLINE_SCORERS = frozenset({"mean_logprob"})


@dataclass(frozen=True)
class PoolSample:
    """One stored sample. ``score`` is the scorer output the run stored, if any."""

    answer: str | None
    completion_tokens: int
    score: float | None
    cumulative_logprob: float | None
    text: str = ""
    confidence: Mapping[str, float] | None = None
    """The call's token-confidence statistics (``CONFIDENCE_COLUMNS``), when it recorded them."""


CONFIDENCE_COLUMNS = ("mean_confidence", "lowest_group_confidence", "tail_confidence")


def _confidence(row: Mapping[str, Any]) -> dict[str, float] | None:
    values = {name: row.get(name) for name in CONFIDENCE_COLUMNS}
    if any(value is None for value in values.values()):
        return None
    return {name: float(value) for name, value in values.items() if value is not None}


@dataclass(frozen=True)
class PoolItem:
    item_id: str
    dataset: str
    gold: str
    samples: tuple[PoolSample, ...]
    source: tuple[str, int] = ("", 0)
    """(strategy, budget) of the unit the samples came from."""
    question: str = ""
    """The question text, when the rows carry it (a stored-score scorer does not read it)."""
    answers_stored: bool = False
    """The samples' answers were extracted by the tool that made the pool (an imported pool):
    strategies vote on them instead of re-reading the texts under ttscale's rules."""
    imported: bool = False
    """The pool came from another tool (``ttscale pool import``): its stored scores are whatever
    that tool scored with, so only scorer kind ``stored`` serves them."""


@dataclass(frozen=True)
class SamplePool:
    """Per item, the samples of one earlier unit, ordered by sample index."""

    run_id: str
    items: tuple[PoolItem, ...]

    @classmethod
    def from_rows(
        cls,
        run_id: str,
        rows: Iterable[Mapping[str, Any]],
        *,
        answers_stored: bool = False,
        imported: bool = False,
    ) -> SamplePool:
        """From call rows (ledger columns plus dataset and gold). Per item, the unit with the
        most samples is used (ties: the first in (strategy, budget) order): units of one run
        share their samples' seeds, so the largest unit contains the smaller ones.
        ``answers_stored``, ``imported``: as on ``PoolItem``."""
        groups: dict[str, dict[tuple[str, int], list[Mapping[str, Any]]]] = {}
        for row in rows:
            unit = (str(row["strategy"]), int(row["budget"]))
            groups.setdefault(str(row["item_id"]), {}).setdefault(unit, []).append(row)
        items = []
        for item_id in sorted(groups):
            units = groups[item_id]
            unit = max(sorted(units), key=lambda u: len(units[u]))
            chosen = sorted(units[unit], key=lambda r: int(r["sample_index"]))
            samples = tuple(
                PoolSample(
                    answer=r["extracted_answer"],
                    completion_tokens=int(r["completion_tokens"]),
                    score=r["score"],
                    cumulative_logprob=r["cumulative_logprob"],
                    text=r.get("completion_text") or "",
                    confidence=_confidence(r),
                )
                for r in chosen
            )
            first = chosen[0]
            items.append(
                PoolItem(
                    item_id,
                    str(first["dataset"]),
                    str(first["gold"]),
                    samples,
                    unit,
                    str(first.get("question") or ""),
                    answers_stored,
                    imported,
                )
            )
        return cls(run_id, tuple(items))

    @classmethod
    def from_records(
        cls, run_id: str, records: Iterable[Mapping[str, Any]], questions: Sequence[Question]
    ) -> SamplePool:
        """From the JSON records (``UnitResult.to_json``) of sample-based units."""
        by_id = {q.id: q for q in questions}
        rows = [
            call
            | {
                "item_id": r["item_id"],
                "strategy": r["strategy"],
                "budget": r["budget"],
                "dataset": by_id[r["item_id"]].dataset,
                "gold": by_id[r["item_id"]].answer,
                "question": by_id[r["item_id"]].question,
            }
            for r in records
            for call in r["calls"]
            if call["phase"] == "sample" and call["call_index"] == 0
        ]
        return cls.from_rows(run_id, rows)


@dataclass(frozen=True)
class ReplayResult:
    item_id: str
    final_answer: str | None
    correct: bool
    stop_reason: str
    """A ``StopReason``'s value, as the ledger stores it."""
    samples_used: int
    samples_drawn: int
    completion_tokens: int
    detail: dict[str, Any] = field(default_factory=dict)


def draw_order(item: PoolItem, order: Order = "recorded", seed: int = 0) -> list[int]:
    """Which pool sample each draw gets: draw i is pool sample ``draw_order(...)[i]``."""
    n = len(item.samples)
    if order == "recorded":
        return list(range(n))
    rng = np.random.default_rng(derive_seed(seed, item.item_id))
    return [int(i) for i in rng.permutation(n)]


def _engine_for(item: PoolItem, order: Order, seed: int) -> tuple[ReplayEngine, int]:
    """A replay engine serving ``item``'s samples in ``order``, and the run seed that names them.

    A strategy asks for draw i with the seed ``StrategyContext.sample_seed(i, 0)``; the first run
    seed under which every draw's seed is distinct keys the pool (it only names draws).
    """
    served = draw_order(item, order, seed)
    for run_seed in range(1000):
        seeds = [derive_seed(run_seed, item.item_id, draw, 0) for draw in range(len(served))]
        if len(set(seeds)) == len(seeds):
            break
    else:  # pragma: no cover - 1000 collisions among 31-bit hashes do not happen
        raise ValueError(f"item {item.item_id}: no run seed names its samples apart")
    stored = {}
    for draw_seed, index in zip(seeds, served, strict=True):
        sample = item.samples[index]
        if sample.answer is not None and not sample.text:
            raise ValueError(
                f"item {item.item_id}: a stored sample has an answer but no completion text; "
                "replay re-reads answers from the text, as a live run does"
            )
        stored[draw_seed] = StoredCompletion(
            text=sample.text,
            completion_tokens=sample.completion_tokens,
            cumulative_logprob=sample.cumulative_logprob,
            score=sample.score,
            confidence=sample.confidence,
        )
    return ReplayEngine(stored, name=f"replay:{item.item_id}"), run_seed


class _StoredScorer:
    """The score stored with each served sample; without one, a scorer that needs nothing else."""

    def __init__(
        self, engine: ReplayEngine, config: ScorerConfig, item_id: str, imported: bool = False
    ) -> None:
        self.name: str = config.kind
        self.engine = engine
        self.item_id = item_id
        self.imported = imported
        self._fallback = make_scorer(config) if config.kind in _OFFLINE_SCORERS else None

    async def score(self, question: str, completion: Completion) -> float:
        if self.imported and self.name != "stored":
            raise ValueError(
                f"item {self.item_id}: an imported pool's scores are served to scorer kind "
                f"'stored' only (scorer.kind=stored), not to {self.name!r}"
            )
        stored = self.engine.stored_score(completion)
        if stored is not None:
            return stored
        if self._fallback is None:
            what = "scores" if self.name == "stored" else f"{self.name} scores"
            raise ValueError(f"the pool holds no stored {what} for item {self.item_id}")
        return await self._fallback.score(question, completion)

    async def aclose(self) -> None:
        if self._fallback is not None:
            await self._fallback.aclose()


def _stored_answers(item: PoolItem) -> dict[str, str | None]:
    """Completion text → the pool's answer; one text given two answers is refused."""
    answers: dict[str, str | None] = {}
    for sample in item.samples:
        if answers.setdefault(sample.text, sample.answer) != sample.answer:
            raise ValueError(
                f"item {item.item_id}: one completion text has two stored answers "
                f"({answers[sample.text]!r} and {sample.answer!r})"
            )
    return answers


async def replay_item(
    config: StrategyConfigBase,
    item: PoolItem,
    budget: int,
    order: Order = "recorded",
    seed: int = 0,
) -> ReplayResult:
    """Run ``config``'s strategy with ``budget`` on one pool item, through the replay engine."""
    from ttscale.schemas import Question  # schemas imports strategies: import when used

    entry = registry.get(config.kind)
    if not entry.replayable:
        replayable = [e.kind for e in registry.entries() if e.replayable]
        raise ValueError(
            f"strategy {config.kind!r} cannot be replayed from independent samples; "
            f"known: {replayable}"
        )
    engine, run_seed = _engine_for(item, order, seed)

    def scorers(scorer: ScorerConfig) -> Scorer:
        return _StoredScorer(engine, scorer, item.item_id, item.imported)

    stored_answers = _stored_answers(item) if item.answers_stored else None

    question = Question(
        id=item.item_id,
        question=item.question or f"(stored item {item.item_id})",
        answer=item.gold,
        dataset=item.dataset,
    )
    ctx = StrategyContext(
        engine=engine,
        # The profile shapes prompts and the thinking split, which a pool does not store.
        profile=PROFILES["plain"],
        question=question,
        strategy=config.kind,
        budget=budget,
        run_seed=run_seed,
        scorers=scorers,
        stored_answers=stored_answers,
    )
    outcome = await entry.run(ctx, config)
    return ReplayResult(
        item_id=item.item_id,
        final_answer=outcome.final_answer,
        correct=is_correct(outcome.final_answer, item.gold, item.dataset),
        stop_reason=str(outcome.stop_reason),
        samples_used=outcome.samples_used,
        samples_drawn=len({c.sample_index for c in ctx.calls}),
        completion_tokens=sum(c.completion_tokens for c in ctx.calls),
        detail=outcome.detail,
    )


def replay(
    config: StrategyConfigBase,
    pool: SamplePool,
    budget: int,
    order: Order = "recorded",
    seed: int = 0,
) -> list[ReplayResult]:
    """Replay ``config``'s strategy with ``budget`` on every pool item (one event loop).

    A sample-count budget larger than the smallest item pool is refused up front.
    """
    smallest = min((len(item.samples) for item in pool.items), default=0)
    if registry.get(config.kind).replayable and budget > smallest:
        raise PoolExhaustedError(
            f"budget {budget} needs up to {budget} samples per item, but the pool of run "
            f"{pool.run_id} holds {smallest}: replay budgets up to {smallest}"
        )

    async def run_all() -> list[ReplayResult]:
        return [await replay_item(config, item, budget, order, seed) for item in pool.items]

    return asyncio.run(run_all())


def unbiased_majority_at_k(answers: Sequence[str | None], gold_key: str | None, k: int) -> float:
    """E[majority@k correct] over a uniformly random k-subset of the n ≥ k ``answers``.

    ``answers`` are canonical answer keys (None = no answer; it never wins). Exact, by
    enumerating vote outcomes rather than subsets: the number of k-subsets in which gold gets g
    votes and every other answer at most g is counted by a dynamic program over the other
    answers (multivariate hypergeometric counts). A tie between gold and t other answers counts
    1/(t + 1): the expected value of the earliest-sample tie-break when sample order is
    exchangeable.
    """
    n = len(answers)
    if not 1 <= k <= n:
        raise ValueError(f"need 1 <= k <= n, got k={k}, n={n}")
    counts = Counter(a for a in answers if a is not None)
    gold_count = counts.pop(gold_key, 0) if gold_key is not None else 0
    if gold_count == 0:
        return 0.0
    unanswered = n - gold_count - sum(counts.values())
    others = list(counts.values())
    favourable = 0.0
    for g in range(1, min(k, gold_count) + 1):
        # ways[s][t]: subsets drawing s samples from other answers, none above g, t of them at g.
        max_ties = (k - g) // g
        ways = [[0] * (max_ties + 1) for _ in range(k - g + 1)]
        ways[0][0] = 1
        for c in others:
            updated = [[0] * (max_ties + 1) for _ in range(k - g + 1)]
            for s, row in enumerate(ways):
                for t, w in enumerate(row):
                    if not w:
                        continue
                    for x in range(min(c, g, k - g - s) + 1):
                        tie = t + (x == g)
                        if tie <= max_ties:
                            updated[s + x][tie] += w * math.comb(c, x)
            ways = updated
        for s, row in enumerate(ways):
            rest = math.comb(unanswered, k - g - s)
            if rest:
                favourable += (
                    math.comb(gold_count, g) * rest * sum(w / (t + 1) for t, w in enumerate(row))
                )
    return favourable / math.comb(n, k)
