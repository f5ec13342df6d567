"""Pieces shared by strategies: the question prompt, answer extraction, voting."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from ttscale.grading import canonical_answer, extract_answer
from ttscale.prompts import question_messages
from ttscale.strategies.base import StrategyContext


async def question_prompt(
    ctx: StrategyContext, system_extra: str = "", thinking_prefix: str | None = None
) -> list[int]:
    """Token ids of the chat prompt for ``ctx.question``, opened with the thinking prefix."""
    messages = question_messages(ctx.profile, ctx.question.question, system_extra)
    prefix = ctx.profile.thinking_prefix if thinking_prefix is None else thinking_prefix
    ids = await ctx.engine.achat_prompt(messages)
    return ids + await ctx.engine.aencode(prefix) if prefix else ids


def extractor(ctx: StrategyContext) -> Callable[[str], str | None]:
    """Answer extraction under the item's dataset rules."""
    dataset = ctx.question.dataset
    return lambda text: extract_answer(text, dataset)


@dataclass(frozen=True)
class Vote:
    """A vote's winner (None if no sample had an answer) and the count per canonical answer."""

    winner: str | None
    counts: dict[str, int]
    winner_votes: int

    def top_two(self) -> tuple[int, int]:
        ordered = [*sorted(self.counts.values(), reverse=True), 0, 0]
        return ordered[0], ordered[1]


def weighted_vote(answers: Sequence[str | None], weights: Sequence[float], dataset: str) -> Vote:
    """Sum weights per canonical answer; samples with no answer do not vote.

    In case of a tie, returns the answer whose first sample came earliest, so the result does not
    depend on dict or sort order. ``winner`` is the first raw answer of the winning group.
    """
    totals: dict[str, float] = {}
    counts: dict[str, int] = {}
    first_raw: dict[str, str] = {}
    for answer, weight in zip(answers, weights, strict=True):
        key = canonical_answer(answer, dataset)
        if key is None or answer is None:
            continue
        totals[key] = totals.get(key, 0.0) + weight
        counts[key] = counts.get(key, 0) + 1
        first_raw.setdefault(key, answer)
    if not totals:
        return Vote(None, {}, 0)
    # dicts keep insertion order = order of first occurrence; max() keeps the first maximum.
    best = max(totals, key=lambda k: totals[k])
    return Vote(first_raw[best], counts, counts[best])


def majority_vote(answers: Sequence[str | None], dataset: str) -> Vote:
    """Plain majority: every answered sample weighs 1 (same tie-break as ``weighted_vote``)."""
    return weighted_vote(answers, [1.0] * len(answers), dataset)
