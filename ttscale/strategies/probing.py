"""Thinking in chunks with answer probes: the loop of ``probe_stop`` and ``confidence_stop``, and
of the probe-and-stop samples of majority vote and Adaptive-Consistency.

One trace thinks ``probe_every`` tokens at a time. After each chunk a short answer probe is
branched off the current prefix (the delimiter and the profile's answer cue forced, greedily, as
budget forcing forces its answer); a stopping rule reads the probe history and says whether to
stop. Thinking also ends when the model ends it, or at the cap. Probe calls are phase "probe":
their tokens are answer tokens and count as spent.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import Field, field_validator

from ttscale.engines.base import Completion, SamplingSpec
from ttscale.grading import canonical_answer
from ttscale.strategies.base import StopReason, StrategyContext
from ttscale.strategies.common import force_answer
from ttscale.strategies.config import StrategyConfigBase
from ttscale.strategies.stopping import StopDecision


class ProbingConfigBase(StrategyConfigBase):
    """What every probed-thinking strategy shares: the cap B, the probe interval and lengths."""

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


@dataclass
class ProbeHistory:
    """Every probe of one trace so far: where it was taken, its answer and graded-equal key, and
    its confidence (mean probability of its tokens; None where the engine gave no logprobs)."""

    positions: list[int] = field(default_factory=list)
    answers: list[str | None] = field(default_factory=list)
    keys: list[str | None] = field(default_factory=list)
    confidences: list[float | None] = field(default_factory=list)


ProbeRule = Callable[[ProbeHistory, bool], StopDecision]
"""A stopping rule over the probe history; the flag says thinking has reached its cap."""


@dataclass(frozen=True)
class ProbedThinking:
    """One probed trace: its kept thinking ids and text, its probes, and why thinking ended."""

    thinking_ids: list[int]
    thinking_text: str
    history: ProbeHistory
    stop: StopReason
    decision: StopDecision | None
    """The rule's last decision; None when the model ended its thinking before any stop."""


def probe_confidence(completion: Completion) -> float | None:
    """Mean token probability of a probe's tokens (CoDE-Stop's answer confidence), or None when
    the engine returned no per-token logprobs."""
    logprobs = completion.token_logprobs
    if not logprobs:
        return None
    return sum(math.exp(lp) for lp in logprobs) / len(logprobs)


@dataclass(frozen=True)
class ProbeSettings:
    """How one trace is thought and probed: the sampling of its thinking, the probe interval and
    length, and its thinking cap."""

    probe_every: int
    probe_max_tokens: int
    temperature: float
    top_p: float
    cap: int

    @classmethod
    def of(cls, config: ProbingConfigBase, cap: int) -> ProbeSettings:
        return cls(
            config.probe_every, config.probe_max_tokens, config.temperature, config.top_p, cap
        )


async def think_with_probes(
    ctx: StrategyContext,
    prompt: Sequence[int],
    settings: ProbeSettings,
    rule: ProbeRule,
    *,
    sample_index: int = 0,
) -> ProbedThinking:
    """Think in chunks of ``settings.probe_every`` tokens from ``prompt``, probing after each,
    until ``rule`` stops, the model ends its thinking, or ``settings.cap`` thinking tokens."""
    delimiter, dataset = ctx.profile.end_of_thinking, ctx.question.dataset
    cap = settings.cap
    prompt = list(prompt)
    thinking_ids: list[int] = []
    thinking_text = ""
    history = ProbeHistory()
    while True:
        completion = await ctx.generate(
            prompt + thinking_ids,
            SamplingSpec(
                max_tokens=min(settings.probe_every, cap - len(thinking_ids)),
                temperature=settings.temperature,
                top_p=settings.top_p,
                stop=(delimiter,),
            ),
            sample_index=sample_index,
            phase="thinking",
        )
        thinking_text += completion.text
        # A stop string is only seen inside one request: a delimiter split across two chunks
        # ends the thinking too.
        if completion.finish_reason != "length" or delimiter in thinking_text:
            # The model ended its thinking (delimiter or end of sequence): as in budget forcing,
            # its text without the delimiter is re-encoded.
            kept = _before(thinking_text, delimiter)
            ids = await ctx.engine.aencode(kept)
            return ProbedThinking(ids, kept, history, StopReason.MODEL_STOPPED, None)
        thinking_ids += completion.token_ids
        if len(thinking_ids) >= cap:
            decision = rule(history, True)
            return ProbedThinking(
                thinking_ids, thinking_text, history, decision.stop_reason, decision
            )
        probe, answer = await force_answer(
            ctx,
            prompt + thinking_ids,
            max_tokens=settings.probe_max_tokens,
            phase="probe",
            record_answer=True,
            sample_index=sample_index,
        )
        history.positions.append(len(thinking_ids))
        history.answers.append(answer)
        history.keys.append(canonical_answer(answer, dataset))
        history.confidences.append(probe_confidence(probe))
        decision = rule(history, False)
        if decision.stop:
            return ProbedThinking(
                thinking_ids, thinking_text, history, decision.stop_reason, decision
            )


def _before(text: str, delimiter: str) -> str:
    return text[: text.find(delimiter)] if delimiter in text else text


def phase_tokens(ctx: StrategyContext, phase: str, sample_index: int | None = None) -> int:
    """Completion tokens of ``ctx``'s calls in ``phase`` (of one sample, if given)."""
    return sum(
        c.completion_tokens
        for c in ctx.calls
        if c.phase == phase and (sample_index is None or c.sample_index == sample_index)
    )


def probe_detail(
    ctx: StrategyContext, thinking: ProbedThinking, sample_index: int | None = None
) -> dict[str, Any]:
    """The decision record of one probed trace: tokens by phase, probe history, why it stopped."""
    history = thinking.history
    return {
        "thinking_tokens": phase_tokens(ctx, "thinking", sample_index),
        "probe_tokens": phase_tokens(ctx, "probe", sample_index),
        "probe_positions": list(history.positions),
        "probe_answers": list(history.answers),
        "probe_confidences": list(history.confidences),
        "stopped": str(thinking.stop),
    }
