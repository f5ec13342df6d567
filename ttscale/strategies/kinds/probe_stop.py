"""Probe-and-stop (Dynasor-CoT, Fu et al. 2024, arXiv 2412.20993): stop thinking once it settles.

One trace thinks in chunks of ``probe_every`` tokens. After each chunk a short answer probe is
branched off the current prefix (the delimiter and answer cue forced, as budget forcing forces its
answer); thinking stops when ``k`` consecutive probes give one graded-equal answer, when the model
ends its thinking, or at the cap B. Then the final answer is forced as budget forcing does. B is
the same thinking-token cap as budget forcing's, so the two share curves and x axes; probe tokens
are recorded as their own phase ("probe") and count as spent.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import ConfigDict, Field, field_validator

from ttscale.engines.base import SamplingSpec
from ttscale.grading import canonical_answer
from ttscale.strategies.base import Outcome, StopReason, StrategyContext
from ttscale.strategies.common import force_answer, question_prompt
from ttscale.strategies.config import StrategyConfigBase
from ttscale.strategies.kinds.budget_forcing import THINKING_TOKENS
from ttscale.strategies.language import forcing_for
from ttscale.strategies.registry import strategy
from ttscale.strategies.stopping import probes_agree_decision


class ProbeStopConfig(StrategyConfigBase):
    """Probe-and-stop: every ``probe_every`` thinking tokens, force a short answer from the trace
    so far; stop thinking once ``k`` probes in a row agree (or at B), then force the answer."""

    model_config = ConfigDict(title="Probe and stop")

    kind: Literal["probe_stop"] = Field("probe_stop", title="Strategy kind")
    temperature: float = Field(
        0.0, ge=0, le=2, title="Temperature", description="Of the thinking; 0 is greedy, as in s1."
    )
    budgets_tokens: list[int] = Field(
        [64, 128, 256],
        title="Thinking caps B (tokens)",
        description="One result per B: thinking stops at B tokens at the latest.",
    )
    probe_every: int = Field(
        32,
        ge=1,
        le=32768,
        title="Tokens between probes",
        description="Thinking tokens generated before each answer probe.",
    )
    k: int = Field(
        2,
        ge=1,
        le=64,
        title="Agreeing probes to stop",
        description="Stop when this many consecutive probes give the same answer.",
    )
    probe_max_tokens: int = Field(
        16, ge=1, le=1024, title="Probe tokens", description="Most tokens of one answer probe."
    )
    answer_max_tokens: int = Field(
        32, ge=1, le=1024, title="Answer tokens", description="Tokens for the forced answer."
    )
    language_forcing: Literal["none", "prefix", "system", "all"] = Field(
        "none",
        title="Language forcing",
        description="Keep thinking in the question's language: a translated thinking prefix, a "
        "'think and answer only in X' system prompt, or both.",
    )

    @field_validator("budgets_tokens")
    @classmethod
    def _valid_budgets(cls, v: list[int]) -> list[int]:
        return cls._check_budgets(v)

    def budgets(self) -> list[int]:
        return list(self.budgets_tokens)


@strategy(ProbeStopConfig, order=90, budget=THINKING_TOKENS)
async def probe_stop(ctx: StrategyContext, config: ProbeStopConfig) -> Outcome:
    """One trace, probed every ``probe_every`` tokens; thinking ends at the first k agreeing
    probes, an early end of thinking, or ``ctx.budget`` tokens; then the answer is forced."""
    forcing = forcing_for(config.language_forcing, ctx.question.language, "")
    prompt = await question_prompt(
        ctx, forcing.system_extra, ctx.profile.thinking_prefix + forcing.thinking_prefix
    )
    delimiter, dataset = ctx.profile.end_of_thinking, ctx.question.dataset
    thinking_ids: list[int] = []
    thinking_text = ""
    positions: list[int] = []
    answers: list[str | None] = []
    keys: list[str | None] = []
    while True:
        completion = await ctx.generate(
            prompt + thinking_ids,
            SamplingSpec(
                max_tokens=min(config.probe_every, ctx.budget - len(thinking_ids)),
                temperature=config.temperature,
                top_p=config.top_p,
                stop=(delimiter,),
            ),
            sample_index=0,
            phase="thinking",
        )
        thinking_text += completion.text
        # A stop string is only seen inside one request: a delimiter split across two chunks
        # ends the thinking too.
        if completion.finish_reason != "length" or delimiter in thinking_text:
            # The model ended its thinking (delimiter or end of sequence): as in budget forcing,
            # its text without the delimiter is re-encoded.
            thinking_ids = await _encode(ctx, _before(thinking_text, delimiter))
            stop = StopReason.MODEL_STOPPED
            break
        thinking_ids += completion.token_ids
        if len(thinking_ids) >= ctx.budget:
            stop = probes_agree_decision(keys, config.k, at_cap=True).stop_reason
            break
        _, answer = await force_answer(
            ctx,
            prompt + thinking_ids,
            max_tokens=config.probe_max_tokens,
            phase="probe",
            record_answer=True,
        )
        positions.append(len(thinking_ids))
        answers.append(answer)
        keys.append(canonical_answer(answer, dataset))
        decision = probes_agree_decision(keys, config.k)
        if decision.stop:
            stop = decision.stop_reason
            break
    answer_call, final = await force_answer(
        ctx, prompt + thinking_ids, max_tokens=config.answer_max_tokens, phase="answer"
    )
    return Outcome(
        final_answer=final,
        stop_reason=stop,
        samples_used=1,
        detail={
            "thinking_tokens": _tokens(ctx, "thinking"),
            "probe_tokens": _tokens(ctx, "probe"),
            "budget": ctx.budget,
            "probe_every": config.probe_every,
            "k": config.k,
            "probe_positions": positions,
            "probe_answers": answers,
            "stopped": str(stop),
        },
        answered_language=forcing.detect(answer_call.text, thinking_text),
    )


def _before(text: str, delimiter: str) -> str:
    return text[: text.find(delimiter)] if delimiter in text else text


async def _encode(ctx: StrategyContext, text: str) -> list[int]:
    """The one tokenizer call of this strategy besides its prompt and forced cues."""
    return await ctx.engine.aencode(text)


def _tokens(ctx: StrategyContext, phase: str) -> int:
    return sum(c.completion_tokens for c in ctx.calls if c.phase == phase)


@dataclass(frozen=True)
class ProbeReplay:
    """Where a recorded probe history stops under other settings, and with what answer."""

    stop_reason: StopReason
    thinking_tokens: int
    probes: int
    final_answer: str | None


def replay_probes(
    detail: Mapping[str, Any],
    final_answer: str | None,
    dataset: str,
    *,
    k: int,
    probe_every: int,
    cap: int,
) -> ProbeReplay:
    """Replay a recorded ``probe_stop`` unit (its ``detail`` and final answer) under another k,
    probe interval (a multiple of the recorded one) and cap (at most the recorded one), with no
    generation: the recorded probes at the positions the new settings probe decide the stop.

    The answer at a stop is the probe's answer at that position: the forced final answer is
    branched off the same prefix, greedily, so it repeats the probe unless ``probe_max_tokens``
    cut the probe short. A history that ends (k probes agreed) before the new settings stop,
    or a cap where no answer was recorded, cannot be replayed: ``ValueError``. A run recorded
    with a k larger than its probes (it never stops early) replays under every smaller k.
    """
    recorded_every, recorded_cap = int(detail["probe_every"]), int(detail["budget"])
    if probe_every % recorded_every or cap > recorded_cap:
        raise ValueError(
            f"replay needs a probe interval that is a multiple of {recorded_every} and a cap "
            f"of at most {recorded_cap}, got {probe_every} and {cap}"
        )
    answers = dict(zip(detail["probe_positions"], detail["probe_answers"], strict=True))
    keys: list[str | None] = []
    for position in range(probe_every, cap, probe_every):
        if position not in answers:
            break
        keys.append(canonical_answer(answers[position], dataset))
        if probes_agree_decision(keys, k).stop:
            return ProbeReplay(StopReason.PROBES_AGREED, position, len(keys), answers[position])
    recorded_stop, thinking = detail["stopped"], int(detail["thinking_tokens"])
    if recorded_stop == StopReason.MODEL_STOPPED and thinking < cap:
        return ProbeReplay(StopReason.MODEL_STOPPED, thinking, len(keys), final_answer)
    if recorded_stop == StopReason.PROBES_AGREED and thinking < cap:
        raise ValueError(f"the recorded run stopped at {thinking} tokens, before this replay would")
    if cap == recorded_cap and recorded_stop == StopReason.CAP:
        return ProbeReplay(StopReason.CAP, cap, len(keys), final_answer)
    if cap in answers:
        return ProbeReplay(StopReason.CAP, cap, len(keys), answers[cap])
    raise ValueError(
        f"no answer was recorded at the cap {cap}: probe at it, or replay at {recorded_cap}"
    )
