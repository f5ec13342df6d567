"""Probe-and-stop (Dynasor-CoT, Fu et al. 2024, arXiv 2412.20993): stop thinking once it settles.

One trace thinks in chunks of ``probe_every`` tokens. After each chunk a short answer probe is
branched off the current prefix (the delimiter and answer cue forced, as budget forcing forces its
answer); thinking stops when ``k`` consecutive probes give one graded-equal answer, when the model
ends its thinking, or at the cap B. Then the final answer is forced as budget forcing does. B is
the same thinking-token cap as budget forcing's, so the two share curves and x axes; probe tokens
are recorded as their own phase ("probe") and count as spent.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import ConfigDict, Field

from ttscale.grading import canonical_answer
from ttscale.strategies.base import Outcome, StopReason, StrategyContext
from ttscale.strategies.common import force_answer, question_prompt
from ttscale.strategies.kinds.budget_forcing import THINKING_TOKENS
from ttscale.strategies.language import forcing_for
from ttscale.strategies.probing import (
    ProbeHistory,
    ProbeSettings,
    ProbingConfigBase,
    probe_detail,
    think_with_probes,
)
from ttscale.strategies.registry import strategy
from ttscale.strategies.stopping import StopDecision, probes_agree_decision


class ProbeStopConfig(ProbingConfigBase):
    """Probe-and-stop: every ``probe_every`` thinking tokens, force a short answer from the trace
    so far; stop thinking once ``k`` probes in a row agree (or at B), then force the answer."""

    model_config = ConfigDict(title="Probe and stop")

    kind: Literal["probe_stop"] = Field("probe_stop", title="Strategy kind")
    k: int = Field(
        2,
        ge=1,
        le=64,
        title="Agreeing probes to stop",
        description="Stop when this many consecutive probes give the same answer.",
    )


def agreement_rule(k: int) -> Callable[[ProbeHistory, bool], StopDecision]:
    """Dynasor-CoT's rule as a probe rule: k consecutive graded-equal probe answers."""
    return lambda history, at_cap: probes_agree_decision(history.keys, k, at_cap=at_cap)


@strategy(ProbeStopConfig, order=90, budget=THINKING_TOKENS)
async def probe_stop(ctx: StrategyContext, config: ProbeStopConfig) -> Outcome:
    """One trace, probed every ``probe_every`` tokens; thinking ends at the first k agreeing
    probes, an early end of thinking, or ``ctx.budget`` tokens; then the answer is forced."""
    forcing = forcing_for(config.language_forcing, ctx.question.language, "")
    prompt = await question_prompt(
        ctx, forcing.system_extra, ctx.profile.thinking_prefix + forcing.thinking_prefix
    )
    thinking = await think_with_probes(
        ctx, prompt, ProbeSettings.of(config, ctx.budget), agreement_rule(config.k)
    )
    answer_call, final = await force_answer(
        ctx, prompt + thinking.thinking_ids, max_tokens=config.answer_max_tokens, phase="answer"
    )
    detail = probe_detail(ctx, thinking)
    detail.update(budget=ctx.budget, probe_every=config.probe_every, k=config.k)
    return Outcome(
        final_answer=final,
        stop_reason=thinking.stop,
        samples_used=1,
        detail=detail,
        answered_language=forcing.detect(answer_call.text, thinking.thinking_text),
    )


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
