"""Sequential refinement: the model re-reads its previous solution and may revise it.

Self-refinement in the style of Madaan et al. 2023 (Self-Refine) without a separate critic:
each round shows the question, the previous solution as the assistant's turn, and a request to
check and revise it. Rounds stop at the cap (the budget) or as soon as a revision repeats the
previous answer, which then counts as confirmed.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import ConfigDict, Field, field_validator

from ttscale.engines.base import SamplingSpec
from ttscale.grading import canonical_answer
from ttscale.prompts import question_messages
from ttscale.strategies.base import Outcome, StopReason, StrategyContext
from ttscale.strategies.common import extractor, question_prompt
from ttscale.strategies.config import StrategyConfigBase
from ttscale.strategies.registry import BudgetUnit, strategy


class RefinementConfig(StrategyConfigBase):
    """Sequential refinement: the model re-reads its previous answer and may revise it.

    Budget = the most re-think rounds after the first attempt; stops early when a round's answer
    repeats the previous round's.
    """

    model_config = ConfigDict(title="Sequential refinement")

    kind: Literal["refinement"] = Field("refinement", title="Strategy kind")
    rounds: list[int] = Field(
        [1, 2, 4],
        title="Round caps",
        description="One result per cap: at most that many revisions.",
    )
    instruction: str = Field(
        "Review your previous solution step by step. If it is wrong, correct it; "
        "otherwise keep it. End with a line 'Final Answer: <answer>'.",
        title="Revision instruction",
        description="The user turn that asks for a revision.",
    )

    @field_validator("rounds")
    @classmethod
    def _valid_rounds(cls, v: list[int]) -> list[int]:
        return cls._check_budgets(v)

    def budgets(self) -> list[int]:
        return list(self.rounds)


async def refine_prompt(ctx: StrategyContext, previous: str, instruction: str) -> list[int]:
    """Token ids of the chat: question, the previous solution, then the revision request."""
    messages = question_messages(ctx.profile, ctx.question.question)
    messages += [
        {"role": "assistant", "content": previous},
        {"role": "user", "content": instruction},
    ]
    ids = await ctx.engine.achat_prompt(messages)
    prefix = ctx.profile.thinking_prefix
    return ids + await ctx.engine.aencode(prefix) if prefix else ids


@strategy(RefinementConfig, order=80, budget=BudgetUnit("rounds"))
async def refinement(ctx: StrategyContext, config: RefinementConfig) -> Outcome:
    """A first attempt, then up to ``ctx.budget`` revisions (one trajectory, sample 0).

    Only the latest solution is shown to the next round, so prompts stay bounded. The answer is
    the last round's (or the latest round that had one).
    """
    spec = SamplingSpec(
        max_tokens=config.max_tokens, temperature=config.temperature, top_p=config.top_p
    )
    extract = extractor(ctx)
    dataset = ctx.question.dataset
    completion = await ctx.generate(
        await question_prompt(ctx), spec, sample_index=0, phase="sample", extract=extract
    )
    answers = [extract(completion.text)]
    reason = StopReason.CAP
    for _ in range(ctx.budget):
        prompt = await refine_prompt(ctx, completion.text, config.instruction)
        completion = await ctx.generate(
            prompt, spec, sample_index=0, phase="refine", extract=extract
        )
        answers.append(extract(completion.text))
        previous_key = canonical_answer(answers[-2], dataset)
        if previous_key is not None and previous_key == canonical_answer(answers[-1], dataset):
            reason = StopReason.ANSWER_REPEATED
            break
    final = next((a for a in reversed(answers) if a is not None), None)
    detail: dict[str, Any] = {"revisions": len(answers) - 1, "answers": answers, "cap": ctx.budget}
    return Outcome(final, reason, 1, detail)
