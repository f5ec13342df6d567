"""Probe-and-stop inside each sample of a sample-count strategy (majority vote, Adaptive-
Consistency): the two axes of test-time scaling together, samples × thinking tokens per sample.

With ``thinking={"stop": "probe", ...}`` on such a strategy, every sample i thinks in chunks of
``probe_every`` tokens (at the strategy's temperature, seeded as sample i), is probed after each
chunk, stops thinking once ``k`` consecutive probes agree (or at ``cap`` tokens, or where the model
ends it), and then has its answer forced, all as sample i's calls. The strategy votes over those
answers as it votes over plain samples. Off by default: a config without ``thinking`` dumps
exactly as before, so existing run ids and fingerprints do not change.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SerializerFunctionWrapHandler, model_serializer

from ttscale.grading import canonical_answer
from ttscale.strategies.base import StrategyContext
from ttscale.strategies.common import force_answer, question_prompt
from ttscale.strategies.config import StrategyConfigBase
from ttscale.strategies.probing import ProbeSettings, phase_tokens, think_with_probes
from ttscale.strategies.sampling import LiveSampler, Sample
from ttscale.strategies.stopping import probes_agree_decision


class ThinkingStopConfig(BaseModel):
    """Probe-and-stop inside every sample: probe each ``probe_every`` thinking tokens, stop that
    sample's thinking once ``k`` probes in a row agree or at ``cap`` tokens, then force its answer."""

    model_config = ConfigDict(frozen=True, extra="forbid", title="Thinking stop per sample")

    stop: Literal["probe"] = Field("probe", title="Stop rule", description="Dynasor-CoT probes.")
    probe_every: int = Field(32, ge=1, le=32768, title="Tokens between probes")
    k: int = Field(2, ge=1, le=64, title="Agreeing probes to stop")
    cap: int = Field(256, ge=1, le=131072, title="Thinking cap per sample (tokens)")
    probe_max_tokens: int = Field(16, ge=1, le=1024, title="Probe tokens")
    answer_max_tokens: int = Field(32, ge=1, le=1024, title="Answer tokens")


class ThinkingStopOption(BaseModel):
    """The optional ``thinking`` field of a sample-count strategy, left out of dumps when off."""

    thinking: ThinkingStopConfig | None = Field(
        None,
        title="Stop thinking inside each sample",
        description='Off by default. {"stop": "probe", "probe_every": 32, "k": 2, "cap": 256} '
        "probes each sample's thinking and stops it once k probes agree.",
    )

    @model_serializer(mode="wrap")
    def _leave_out_when_off(self, handler: SerializerFunctionWrapHandler) -> Any:
        # Fingerprints hash the config's dump: an unset option must dump as before it existed.
        data = handler(self)
        if isinstance(data, dict) and data.get("thinking") is None:
            data.pop("thinking", None)
        return data


class ProbedSampler:
    """``LiveSampler``'s interface (``draw``, ``discard``) over samples whose thinking is probed
    and stopped; ``traces`` keeps each drawn sample's thinking tokens, probes and stop."""

    def __init__(
        self, ctx: StrategyContext, config: StrategyConfigBase, thinking: ThinkingStopConfig
    ) -> None:
        self.ctx = ctx
        self.thinking = thinking
        self.settings = ProbeSettings(
            probe_every=thinking.probe_every,
            probe_max_tokens=thinking.probe_max_tokens,
            temperature=config.temperature,
            top_p=config.top_p,
            cap=thinking.cap,
        )
        self.traces: dict[int, dict[str, Any]] = {}
        self._prompt: list[int] | None = None
        self._prompt_lock = asyncio.Lock()

    async def _prompt_ids(self) -> list[int]:
        async with self._prompt_lock:
            if self._prompt is None:
                self._prompt = await question_prompt(self.ctx)
        return self._prompt

    async def _one(self, index: int) -> Sample:
        prompt = await self._prompt_ids()
        k = self.thinking.k
        thinking = await think_with_probes(
            self.ctx,
            prompt,
            self.settings,
            lambda history, at_cap: probes_agree_decision(history.keys, k, at_cap=at_cap),
            sample_index=index,
        )
        _, answer = await force_answer(
            self.ctx,
            prompt + thinking.thinking_ids,
            max_tokens=self.thinking.answer_max_tokens,
            phase="answer",
            sample_index=index,
        )
        self.traces[index] = {
            "thinking_tokens": phase_tokens(self.ctx, "thinking", index),
            "probe_tokens": phase_tokens(self.ctx, "probe", index),
            "probe_positions": list(thinking.history.positions),
            "probe_answers": list(thinking.history.answers),
            "stopped": str(thinking.stop),
        }
        tokens = sum(c.completion_tokens for c in self.ctx.record_for(index))
        return Sample(
            index=index,
            answer=answer,
            key=canonical_answer(answer, self.ctx.question.dataset),
            completion_tokens=tokens,
            text=thinking.thinking_text,
        )

    async def draw(self, indices: Sequence[int]) -> list[Sample]:
        """The samples ``indices``, drawn concurrently, in the order given."""
        return list(await asyncio.gather(*(self._one(i) for i in indices)))

    def discard(self, index: int) -> None:
        """The strategy threw sample ``index`` away (its tokens still count)."""
        self.ctx.mark_discarded(index)

    def detail(self, used: Sequence[int]) -> dict[str, Any]:
        """The decision record of the samples ``used``: per sample, and the mean thinking."""
        thinking = [self.traces[i]["thinking_tokens"] for i in used]
        return {
            "settings": self.thinking.model_dump(mode="json"),
            "mean_thinking_tokens": sum(thinking) / len(thinking) if thinking else 0.0,
            "samples": {str(i): self.traces[i] for i in sorted(self.traces)},
        }


def sampler_for(ctx: StrategyContext, config: StrategyConfigBase) -> LiveSampler | ProbedSampler:
    """A ``ProbedSampler`` when ``config`` has thinking stop on, else a plain ``LiveSampler``."""
    thinking = getattr(config, "thinking", None)
    if isinstance(thinking, ThinkingStopConfig):
        return ProbedSampler(ctx, config, thinking)
    return LiveSampler(ctx, config)
