"""Confidence-dynamics stop (CoDE-Stop, Hosseini et al. 2026, arXiv 2604.04930).

One trace thinks in chunks of ``probe_every`` tokens, as ``probe_stop`` does; each answer probe's
confidence is the mean probability of its tokens (the engine's per-token logprobs). Thinking stops
when a probe's answer is confident enough under a threshold that ramps up with the probe number,
when a degeneration score (unconfidence, early probes weighted more) says the trace is going
nowhere, when the model ends its thinking, or at the cap B; then the answer is forced. The rule and
which of its parts are the paper's are in ``strategies/confidence_stopping.py``: the signals and
the early weighting are the paper's, the constants below are ours.
"""

from __future__ import annotations

import dataclasses
from typing import Literal

from pydantic import ConfigDict, Field, model_validator

from ttscale.strategies.base import Outcome, StrategyContext
from ttscale.strategies.common import force_answer, question_prompt
from ttscale.strategies.confidence_stopping import (
    ConfidenceRule,
    confidence_stop_decision,
    ramping_threshold,
)
from ttscale.strategies.kinds.budget_forcing import THINKING_TOKENS
from ttscale.strategies.language import forcing_for
from ttscale.strategies.probing import (
    ProbeHistory,
    ProbeRule,
    ProbeSettings,
    ProbingConfigBase,
    probe_detail,
    think_with_probes,
)
from ttscale.strategies.registry import strategy
from ttscale.strategies.stopping import StopDecision

_DEFAULT = ConfidenceRule()


class ConfidenceStopConfig(ProbingConfigBase):
    """Confidence stop: probe every ``probe_every`` thinking tokens; stop once a probe's answer
    confidence reaches a ramping threshold or the confidences look degenerate (or at B)."""

    model_config = ConfigDict(title="Confidence stop")

    kind: Literal["confidence_stop"] = Field("confidence_stop", title="Strategy kind")
    threshold_start: float = Field(
        _DEFAULT.threshold_start,
        gt=0,
        le=1,
        title="Confidence threshold at the first probe",
        description="Mean token probability a first probe's answer needs to stop (ours).",
    )
    threshold_end: float = Field(
        _DEFAULT.threshold_end,
        gt=0,
        le=1,
        title="Confidence threshold after the ramp",
        description="The threshold rises linearly to this over the ramp (ours).",
    )
    ramp_probes: int = Field(
        _DEFAULT.ramp_probes,
        ge=1,
        le=4096,
        title="Ramp length (probes)",
        description="Probes over which the threshold rises from start to end (ours).",
    )
    degeneration_threshold: float = Field(
        _DEFAULT.degeneration_threshold,
        gt=0,
        le=1,
        title="Degeneration threshold",
        description="Stop once the early-weighted mean unconfidence reaches it (ours).",
    )
    degeneration_min_probes: int = Field(
        _DEFAULT.degeneration_min_probes,
        ge=1,
        le=4096,
        title="Probes before degeneration counts",
        description="The degeneration score is checked from this many probes on (ours).",
    )

    @model_validator(mode="after")
    def _valid_ramp(self) -> ConfidenceStopConfig:
        if self.threshold_start > self.threshold_end:
            raise ValueError("threshold_start must be <= threshold_end (the threshold ramps up)")
        return self

    def rule(self) -> ConfidenceRule:
        names = [f.name for f in dataclasses.fields(ConfidenceRule)]
        return ConfidenceRule(**{name: getattr(self, name) for name in names})


def confidence_rule(rule: ConfidenceRule) -> ProbeRule:
    """The confidence-dynamics rule as a probe rule."""

    def decide(history: ProbeHistory, at_cap: bool) -> StopDecision:
        return confidence_stop_decision(history.keys, history.confidences, rule, at_cap)

    return decide


@strategy(ConfidenceStopConfig, order=95, budget=THINKING_TOKENS)
async def confidence_stop(ctx: StrategyContext, config: ConfidenceStopConfig) -> Outcome:
    """One trace, probed every ``probe_every`` tokens; thinking ends at the first confident
    probe, a degenerate history, an early end of thinking, or ``ctx.budget`` tokens."""
    forcing = forcing_for(config.language_forcing, ctx.question.language, "")
    prompt = await question_prompt(
        ctx, forcing.system_extra, ctx.profile.thinking_prefix + forcing.thinking_prefix
    )
    rule = config.rule()
    thinking = await think_with_probes(
        ctx, prompt, ProbeSettings.of(config, ctx.budget), confidence_rule(rule)
    )
    answer_call, final = await force_answer(
        ctx, prompt + thinking.thinking_ids, max_tokens=config.answer_max_tokens, phase="answer"
    )
    detail = probe_detail(ctx, thinking)
    decision = thinking.decision
    detail.update(
        budget=ctx.budget,
        probe_every=config.probe_every,
        thresholds=[ramping_threshold(i, rule) for i in range(1, len(thinking.history.keys) + 1)],
        decision=None if decision is None else dataclasses.asdict(decision),
    )
    return Outcome(
        final_answer=final,
        stop_reason=thinking.stop,
        samples_used=1,
        detail=detail,
        answered_language=forcing.detect(answer_call.text, thinking.thinking_text),
    )
