"""Replay sample-based strategies on a stored sample pool: no engine, no new GPU time.

A ``SamplePool`` holds, per item, the independent samples (phase "sample") of an earlier large-N
run. ``replay`` runs the very same strategy code as a live run (``sampling.Sampler``) against a
``PoolSampler`` that hands out pool samples in recorded order or in a seeded permutation, and
reports tokens as the sum of the samples it consumed (drawn, including discarded ones).
Sequential strategies (budget forcing, refinement) condition on their own outputs and cannot be
replayed from independent samples.
"""

from __future__ import annotations

import asyncio
import math
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from ttscale.grading import canonical_answer, is_correct
from ttscale.strategies.adaptive import run_adaptive_consistency, run_esc, run_optscale
from ttscale.strategies.base import Outcome, derive_seed
from ttscale.strategies.parallel import run_best_of_n, run_majority, run_weighted_vote
from ttscale.strategies.sampling import Sample, Sampler
from ttscale.strategies.scorers import mean_logprob_score

if TYPE_CHECKING:
    from ttscale.schemas import Question

Order = Literal["recorded", "permutation"]


@dataclass(frozen=True)
class PoolSample:
    """One stored sample. ``score`` is the scorer output the run stored, if any."""

    answer: str | None
    completion_tokens: int
    score: float | None
    cumulative_logprob: float | None
    text: str = ""


@dataclass(frozen=True)
class PoolItem:
    item_id: str
    dataset: str
    gold: str
    samples: tuple[PoolSample, ...]
    source: tuple[str, int] = ("", 0)
    """(strategy, budget) of the unit the samples came from."""


@dataclass(frozen=True)
class SamplePool:
    """Per item, the samples of one earlier unit, ordered by sample index."""

    run_id: str
    items: tuple[PoolItem, ...]

    @classmethod
    def from_rows(cls, run_id: str, rows: Iterable[Mapping[str, Any]]) -> SamplePool:
        """From call rows (ledger columns plus dataset and gold). Per item, the unit with the
        most samples is used (ties: the first in (strategy, budget) order): units of one run
        share their samples' seeds, so the largest unit contains the smaller ones."""
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
                )
                for r in chosen
            )
            first = chosen[0]
            items.append(
                PoolItem(item_id, str(first["dataset"]), str(first["gold"]), samples, unit)
            )
        return cls(run_id, tuple(items))

    @classmethod
    def from_records(
        cls, run_id: str, records: Iterable[Mapping[str, Any]], questions: Sequence[Question]
    ) -> SamplePool:
        """From ``runner.run_unit`` records of sample-based units."""
        by_id = {q.id: q for q in questions}
        rows = [
            call
            | {
                "item_id": r["item_id"],
                "strategy": r["strategy"],
                "budget": r["budget"],
                "dataset": by_id[r["item_id"]].dataset,
                "gold": by_id[r["item_id"]].answer,
            }
            for r in records
            for call in r["calls"]
            if call["phase"] == "sample" and call["call_index"] == 0
        ]
        return cls.from_rows(run_id, rows)


class PoolExhaustedError(ValueError):
    """The strategy asked for more samples than the pool holds for an item."""


class PoolSampler:
    """Hands out one item's pool samples: draw i is pool sample order[i]."""

    def __init__(
        self,
        item: PoolItem,
        order: Order = "recorded",
        seed: int = 0,
        scorer_kind: str | None = None,
    ) -> None:
        self.item = item
        self.dataset = item.dataset
        self.scorer_kind = scorer_kind
        n = len(item.samples)
        if order == "recorded":
            self.order = list(range(n))
        else:
            rng = np.random.default_rng(derive_seed(seed, item.item_id))
            self.order = [int(i) for i in rng.permutation(n)]
        self.drawn: list[Sample] = []
        self.discarded: set[int] = set()

    def _score(self, sample: PoolSample) -> float | None:
        if self.scorer_kind is None:
            return sample.score
        if sample.score is not None:
            return sample.score
        if self.scorer_kind == "mean_logprob":
            return mean_logprob_score(sample.cumulative_logprob, sample.completion_tokens)
        raise ValueError(f"pool has no stored {self.scorer_kind} scores for {self.item.item_id}")

    async def draw(self, indices: Sequence[int]) -> list[Sample]:
        out = []
        for index in indices:
            if index >= len(self.order):
                raise PoolExhaustedError(
                    f"item {self.item.item_id}: the strategy asked for sample {index + 1} but the "
                    f"pool holds {len(self.order)}: replay budgets up to the pool's size"
                )
            stored = self.item.samples[self.order[index]]
            sample = Sample(
                index=index,
                answer=stored.answer,
                key=canonical_answer(stored.answer, self.dataset),
                completion_tokens=stored.completion_tokens,
                score=self._score(stored),
                text=stored.text,
            )
            out.append(sample)
            self.drawn.append(sample)
        return out

    def discard(self, index: int) -> None:
        self.discarded.add(index)

    @property
    def tokens(self) -> int:
        """Completion tokens of every sample drawn, kept or discarded."""
        return sum(s.completion_tokens for s in self.drawn)


ReplayFn = Callable[[Sampler, Any, int], Awaitable[Outcome]]

REPLAYS: dict[str, ReplayFn] = {
    "majority": lambda sampler, config, budget: run_majority(sampler, budget),
    "best_of_n": lambda sampler, config, budget: run_best_of_n(sampler, budget),
    "weighted_vote": lambda sampler, config, budget: run_weighted_vote(sampler, budget),
    "adaptive_consistency": run_adaptive_consistency,
    "esc": run_esc,
    "optscale": run_optscale,
}
"""Strategies a pool can replay, by kind: the same functions the live strategies run."""


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


async def replay_item(
    config: Any, item: PoolItem, budget: int, order: Order = "recorded", seed: int = 0
) -> ReplayResult:
    """Run ``config``'s strategy with ``budget`` on one pool item."""
    try:
        replay_fn = REPLAYS[config.kind]
    except KeyError:
        raise ValueError(
            f"strategy {config.kind!r} cannot be replayed; known: {sorted(REPLAYS)}"
        ) from None
    scorer = getattr(config, "scorer", None)
    sampler = PoolSampler(item, order, seed, scorer.kind if scorer is not None else None)
    outcome = await replay_fn(sampler, config, budget)
    return ReplayResult(
        item_id=item.item_id,
        final_answer=outcome.final_answer,
        correct=is_correct(outcome.final_answer, item.gold, item.dataset),
        stop_reason=str(outcome.stop_reason),
        samples_used=outcome.samples_used,
        samples_drawn=len(sampler.drawn),
        completion_tokens=sampler.tokens,
        detail=outcome.detail,
    )


def replay(
    config: Any, pool: SamplePool, budget: int, order: Order = "recorded", seed: int = 0
) -> list[ReplayResult]:
    """Replay ``config``'s strategy with ``budget`` on every pool item (one event loop).

    A sample-count budget larger than the smallest item pool is refused up front.
    """
    smallest = min((len(item.samples) for item in pool.items), default=0)
    if "n" in type(config).model_fields and budget > smallest:
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
