"""Self-consistency (Wang et al. 2023): N samples, majority vote over extracted answers."""

from __future__ import annotations

import asyncio

from ttscale.engines.base import SamplingSpec
from ttscale.strategies.base import Outcome, StopReason, StrategyContext
from ttscale.strategies.common import extractor, majority_vote, question_prompt
from ttscale.strategies.config import MajorityConfig


async def majority(ctx: StrategyContext, config: MajorityConfig) -> Outcome:
    """Draw ``ctx.budget`` samples concurrently and return their majority answer."""
    prompt = question_prompt(ctx)
    spec = SamplingSpec(
        max_tokens=config.max_tokens, temperature=config.temperature, top_p=config.top_p
    )
    extract = extractor(ctx)
    completions = await asyncio.gather(
        *(
            ctx.generate(prompt, spec, sample_index=i, phase="sample", extract=extract)
            for i in range(ctx.budget)
        )
    )
    answers = [extract(c.text) for c in completions]
    vote = majority_vote(answers, ctx.question.dataset)
    return Outcome(
        final_answer=vote.winner,
        stop_reason=StopReason.BUDGET_REACHED,
        samples_used=len(completions),
        detail={"votes": vote.counts},
    )
