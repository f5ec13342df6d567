"""s1 budget forcing (Muennighoff et al. 2025): control thinking length at decode time.

Thinking is capped at B tokens: when the cap is hit, the end-of-thinking delimiter and the answer
cue are appended and the answer generated. With extensions, an early end of thinking is
suppressed and "Wait" appended, as long as budget remains; thinking never exceeds B.
"""

from __future__ import annotations

from typing import Literal

from pydantic import ConfigDict, Field, field_validator

from ttscale.engines.base import SamplingSpec
from ttscale.strategies.base import Outcome, StopReason, StrategyContext
from ttscale.strategies.common import force_answer, question_prompt
from ttscale.strategies.config import StrategyConfigBase
from ttscale.strategies.language import forcing_for
from ttscale.strategies.registry import BudgetUnit, strategy


class BudgetForcingConfig(StrategyConfigBase):
    """s1 budget forcing: cap thinking at B tokens, then force the delimiter and the answer cue.

    With ``extensions > 0``, an early end of thinking is suppressed and ``wait_text`` appended,
    up to that many times while budget remains; thinking never exceeds B.
    """

    model_config = ConfigDict(title="Budget forcing")

    kind: Literal["budget_forcing"] = Field("budget_forcing", title="Strategy kind")
    temperature: float = Field(
        0.0, ge=0, le=2, title="Temperature", description="0 is greedy, as in s1."
    )
    budgets_tokens: list[int] = Field(
        [64, 128, 256],
        title="Thinking budgets B (tokens)",
        description="One result per B: thinking capped at B tokens.",
    )
    extensions: int = Field(
        0,
        ge=0,
        le=16,
        title="Extensions",
        description="Times an early end of thinking is replaced with the wait text.",
    )
    wait_text: str = Field(
        "Wait",
        title="Wait text",
        description="Appended to extend thinking (translated by language forcing).",
    )
    answer_max_tokens: int = Field(
        32, ge=1, le=1024, title="Answer tokens", description="Tokens for the forced answer."
    )
    language_forcing: Literal["none", "wait", "prefix", "system", "all"] = Field(
        "none",
        title="Language forcing",
        description="Keep thinking in the question's language: a translated 'Wait', a translated "
        "thinking prefix, a 'think and answer only in X' system prompt, or all three.",
    )

    @field_validator("budgets_tokens")
    @classmethod
    def _valid_budgets(cls, v: list[int]) -> list[int]:
        return cls._check_budgets(v)

    def budgets(self) -> list[int]:
        return list(self.budgets_tokens)


# The report's x axis counts thousands of thinking tokens, so p and ε read "per 1k tokens".
THINKING_TOKENS = BudgetUnit("1k thinking tokens", scale=1000.0)
"""The budget of a strategy that caps one trace's thinking (budget forcing, probe-and-stop)."""


@strategy(
    BudgetForcingConfig,
    order=20,
    budget=THINKING_TOKENS,
    enabled_by_default=True,
)
async def budget_forcing(ctx: StrategyContext, config: BudgetForcingConfig) -> Outcome:
    """One sample whose thinking is forced to end within ``ctx.budget`` tokens."""
    forcing = forcing_for(config.language_forcing, ctx.question.language, config.wait_text)
    prompt = await question_prompt(
        ctx, forcing.system_extra, ctx.profile.thinking_prefix + forcing.thinking_prefix
    )
    delimiter = ctx.profile.end_of_thinking
    largest = max(config.budgets())
    thinking_ids: list[int] = []
    spent = 0
    extensions_used = 0
    how_thinking_ended = StopReason.BUDGET_REACHED
    while ctx.budget - spent > 0:
        completion = await ctx.generate(
            prompt + thinking_ids,
            SamplingSpec(
                max_tokens=ctx.budget - spent,
                temperature=config.temperature,
                top_p=config.top_p,
                stop=(delimiter,),
            ),
            sample_index=0,
            phase="thinking" if extensions_used == 0 else "extension",
            # The sweep's largest budget makes the same request with more room: with the shard's
            # cache, this one is that one's first tokens (exactly, or generated if unsure).
            longest=largest - spent,
        )
        spent += completion.num_tokens
        if completion.finish_reason == "length":
            # Ran into the cap: keep its tokens exactly; the delimiter is forced below.
            thinking_ids += completion.token_ids
            break
        # The model ended its thinking early (delimiter or end of sequence). Its text without
        # the delimiter is re-encoded: the stop text cannot be cut out of the ids exactly.
        text = completion.text
        segment = text[: text.rfind(delimiter)] if delimiter in text else text
        if extensions_used < config.extensions and ctx.budget - spent > 0:
            thinking_ids += await ctx.engine.aencode(segment + " " + forcing.wait_text)
            extensions_used += 1
            continue
        thinking_ids += await ctx.engine.aencode(segment)
        how_thinking_ended = StopReason.MODEL_STOPPED
        break
    answer, final = await force_answer(
        ctx, prompt + thinking_ids, max_tokens=config.answer_max_tokens, phase="answer"
    )
    return Outcome(
        final_answer=final,
        stop_reason=how_thinking_ended,
        samples_used=1,
        detail={"thinking_tokens": spent, "extensions": extensions_used, "budget": ctx.budget},
        answered_language=forcing.detect(answer.text, _thinking_text(ctx)),
    )


def _thinking_text(ctx: StrategyContext) -> str:
    return "".join(c.completion_text for c in ctx.calls if c.phase in ("thinking", "extension"))
