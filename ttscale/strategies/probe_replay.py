"""Offline probing of a stored thinking trace: where would probe-and-stop have stopped it?

A budget-forcing or probe_stop unit stored its thinking (the ledger's completion text of its
"thinking" calls). Re-encoded, the trace is cut at every ``probe_every`` tokens, as the live
strategy would have been, and the answer is forced from each cut with the engine: only probe
generation, no new thinking. Thinking stops where ``k`` consecutive probes agree, where the
stored trace ended its thinking (its delimiter), or at the cap; then the answer is forced as the
live run forces it. With the same settings as a live probe_stop run, the stop is the live one.

Re-encoding assumes the trace's text encodes back to the tokens that were generated; a tokenizer
that merges differently across chunk boundaries can move a cut by a token.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from ttscale.engines.base import Engine
from ttscale.grading import canonical_answer, is_correct
from ttscale.prompts import ModelProfile
from ttscale.strategies.base import StopReason, StrategyContext
from ttscale.strategies.common import force_answer, question_prompt
from ttscale.strategies.language import forcing_for
from ttscale.strategies.probing import phase_tokens
from ttscale.strategies.stopping import probes_agree_decision

if TYPE_CHECKING:
    from ttscale.schemas import Question


@dataclass(frozen=True)
class OfflineProbeSettings:
    """The probe-and-stop settings a stored trace is probed under."""

    probe_every: int
    k: int
    cap: int
    probe_max_tokens: int = 16
    answer_max_tokens: int = 32
    language_forcing: str = "none"
    """As the stored unit was prompted: the probes must continue the same prompt."""


@dataclass(frozen=True)
class OfflineProbeResult:
    """Where one stored trace stops under the settings, with what answer, at what probe cost."""

    item_id: str
    stop_reason: StopReason | None
    """None when the stored trace ends (stopped by its own run) before these settings stop."""
    thinking_tokens: int
    probe_positions: list[int]
    probe_answers: list[str | None]
    probe_tokens: int
    answer_tokens: int
    final_answer: str | None
    correct: bool
    error: str | None = None


async def probe_stored_trace(
    engine: Engine,
    profile: ModelProfile,
    question: Question,
    thinking_text: str,
    settings: OfflineProbeSettings,
    run_seed: int,
) -> OfflineProbeResult:
    """Probe ``thinking_text`` (a stored trace for ``question``) at every ``probe_every``
    tokens below the cap, as the live probe_stop loop would, and force the answer at the stop."""
    ctx = StrategyContext(
        engine=engine,
        profile=profile,
        question=question,
        strategy="replay_probes",
        budget=settings.cap,
        run_seed=run_seed,
    )
    forcing = forcing_for(settings.language_forcing, question.language, "")
    prompt = await question_prompt(
        ctx, forcing.system_extra, profile.thinking_prefix + forcing.thinking_prefix
    )
    delimiter = profile.end_of_thinking
    trace_ids = await engine.aencode(thinking_text)
    positions: list[int] = []
    answers: list[str | None] = []
    keys: list[str | None] = []
    stop: StopReason | None = None
    stop_at = 0
    for position in range(settings.probe_every, settings.cap, settings.probe_every):
        if position > len(trace_ids):
            break
        # The live loop sees the delimiter in the text so far and ends the thinking there.
        if delimiter in await engine.adecode(trace_ids[:position]):
            break
        _, answer = await force_answer(
            ctx,
            prompt + trace_ids[:position],
            max_tokens=settings.probe_max_tokens,
            phase="probe",
            record_answer=True,
        )
        positions.append(position)
        answers.append(answer)
        keys.append(canonical_answer(answer, question.dataset))
        if probes_agree_decision(keys, settings.k).stop:
            stop, stop_at = StopReason.PROBES_AGREED, position
            break
    thinking_ids = trace_ids[:stop_at]
    if stop is None:
        if delimiter in thinking_text:
            kept = thinking_text[: thinking_text.find(delimiter)]
            stop, thinking_ids = StopReason.MODEL_STOPPED, await engine.aencode(kept)
        elif len(trace_ids) >= settings.cap:
            stop, thinking_ids = StopReason.CAP, trace_ids[: settings.cap]
        else:
            return OfflineProbeResult(
                question.id, None, len(trace_ids), positions, answers,
                phase_tokens(ctx, "probe"), 0, None, False,
                error=f"the stored trace ends at {len(trace_ids)} tokens, before these "
                "settings stop: probe a longer trace (a larger budget)",
            )  # fmt: skip
    _, final = await force_answer(
        ctx, prompt + thinking_ids, max_tokens=settings.answer_max_tokens, phase="answer"
    )
    return OfflineProbeResult(
        item_id=question.id,
        stop_reason=stop,
        thinking_tokens=len(thinking_ids),
        probe_positions=positions,
        probe_answers=answers,
        probe_tokens=phase_tokens(ctx, "probe"),
        answer_tokens=phase_tokens(ctx, "answer"),
        final_answer=final,
        correct=is_correct(final, question.answer, question.dataset),
    )
