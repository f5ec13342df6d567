"""Pieces shared by strategies: the question prompt, the forced answer, answer extraction, voting."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from ttscale.engines.base import Completion, SamplingSpec
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
    """Answer extraction under the item's dataset rules, or, for a text the context has a stored
    answer for (``StrategyContext.stored_answers``: an imported pool's own), that answer."""
    dataset = ctx.question.dataset
    stored = ctx.stored_answers
    if stored:
        return lambda text: stored[text] if text in stored else extract_answer(text, dataset)
    return lambda text: extract_answer(text, dataset)


async def force_answer(
    ctx: StrategyContext,
    thinking_prompt: Sequence[int],
    *,
    max_tokens: int,
    phase: str,
    record_answer: bool = False,
    sample_index: int = 0,
) -> tuple[Completion, str | None]:
    """End the thinking in ``thinking_prompt``: append the profile's delimiter and answer cue,
    generate the answer greedily (as sample ``sample_index``, up to a blank line), and extract it.

    Budget forcing's final answer ("answer"); probe-and-stop's probes ("probe") too, whose
    answers are also recorded on their calls (``record_answer``).
    """
    cue = ctx.profile.end_of_thinking + ctx.profile.answer_cue
    forced = await ctx.engine.aencode("\n" + cue)
    extract = extractor(ctx)

    def answer_of(text: str) -> str | None:
        return extract(cue + text)

    completion = await ctx.generate(
        [*thinking_prompt, *forced],
        SamplingSpec(max_tokens=max_tokens, temperature=0.0, stop=("\n\n",)),
        sample_index=sample_index,
        phase=phase,
        extract=answer_of if record_answer else None,
    )
    return completion, answer_of(completion.text)


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
