"""DeepConf (Fu et al. 2025, arXiv 2508.15260): vote with confidence, drop unconfident traces.

Confidence is the model's own, from top-k token logprobs (``strategies.confidence``).

- Offline: draw N traces, keep the top η % by confidence, and vote with confidence weights.
- Online: the first ``warmup`` traces set a stop threshold, the (100 − η)-th percentile of their
  lowest group confidence. Each later trace is streamed and aborted as soon as a window's group
  confidence falls below it; the aborted trace does not vote but its tokens count (its call is
  recorded with finish reason "abort" and ``used=False``). A finished trace votes with weight its
  lowest group confidence if that is at or above the threshold (as the paper's reference code,
  warm-up traces included). Sampling stops once the leading answer holds ``consensus`` of the
  weighted vote, or at N_max traces.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import ConfigDict, Field, model_validator

from ttscale.engines.base import Completion, SamplingSpec
from ttscale.grading import canonical_answer
from ttscale.strategies.base import Outcome, StopReason, StrategyContext
from ttscale.strategies.common import extractor, question_prompt, weighted_vote
from ttscale.strategies.confidence import (
    ConfidenceStats,
    GroupConfidenceStop,
    confidence_stats,
    keep_threshold,
    top_percent,
)
from ttscale.strategies.config import SampleCountConfigBase
from ttscale.strategies.registry import strategy

ConfidenceKind = Literal["lowest_group", "mean", "tail"]


class DeepConfConfig(SampleCountConfigBase):
    """DeepConf: confidence-filtered, confidence-weighted voting; online, it also stops
    unconfident traces while they are generated and stops sampling at consensus.

    Budget = the most traces N_max, warm-up included.
    """

    model_config = ConfigDict(title="DeepConf")

    kind: Literal["deepconf"] = Field("deepconf", title="Strategy kind")
    n: list[int] = Field(
        [16, 32],
        title="Most traces N_max",
        description="One result per N_max: at most that many traces per question.",
    )
    mode: Literal["online", "offline"] = Field(
        "online",
        title="Mode",
        description="'online': abort unconfident traces while generating, stop at consensus; "
        "'offline': draw N_max traces, filter and vote.",
    )
    warmup: int = Field(
        16, ge=1, le=1024, title="Warm-up traces", description="Online: traces that set the bar."
    )
    keep_percent: float = Field(
        10.0,
        gt=0,
        le=100,
        title="Keep top η %",
        description="10: DeepConf-low (aggressive: the bar is the 90th percentile); "
        "90: DeepConf-high (the bar is the 10th percentile).",
    )
    window: int = Field(
        2048, ge=1, title="Group window (tokens)", description="Tokens per group confidence."
    )
    consensus: float = Field(
        0.95,
        gt=0,
        le=1,
        title="Consensus threshold",
        description="Online: stop once the leading answer holds this share of weighted votes.",
    )
    confidence: ConfidenceKind = Field(
        "lowest_group",
        title="Offline confidence",
        description="Offline: the statistic that filters and weights traces.",
    )
    tail: int = Field(2048, ge=1, title="Tail (tokens)", description="Tokens of tail confidence.")
    top_logprobs: int = Field(
        20, ge=1, le=20, title="Top-k logprobs", description="Logprobs per token (k of C_i)."
    )

    @model_validator(mode="after")
    def _warmup_fits(self) -> DeepConfConfig:
        if self.mode == "online" and self.warmup > min(self.n):
            raise ValueError(f"warmup ({self.warmup}) exceeds the smallest N_max ({min(self.n)})")
        return self


@dataclass(frozen=True)
class Trace:
    """One drawn trace: its answer, confidence and whether it was stopped early."""

    index: int
    answer: str | None
    key: str | None
    stats: ConfidenceStats
    aborted: bool

    def confidence(self, kind: ConfidenceKind) -> float:
        if kind == "mean":
            return self.stats.mean_confidence
        if kind == "tail":
            return self.stats.tail_confidence
        return self.stats.lowest_group_confidence


def consensus_share(answers: list[str | None], weights: list[float], dataset: str) -> float:
    """The leading canonical answer's share of the summed weights (0.0 with no answered trace)."""
    totals: dict[str, float] = {}
    for answer, weight in zip(answers, weights, strict=True):
        key = canonical_answer(answer, dataset)
        if key is not None:
            totals[key] = totals.get(key, 0.0) + weight
    total = sum(totals.values())
    return max(totals.values()) / total if total > 0 else 0.0


class TraceDrawer:
    """Draws traces of one item with top-k logprobs, recorded through ``ctx``."""

    def __init__(self, ctx: StrategyContext, config: DeepConfConfig) -> None:
        self.ctx, self.config = ctx, config
        # The recorded lowest group confidence is the one this strategy decides on.
        ctx.confidence_window, ctx.confidence_tail = config.window, config.tail
        self.spec = SamplingSpec(
            max_tokens=config.max_tokens,
            temperature=config.temperature,
            top_p=config.top_p,
            top_logprobs=config.top_logprobs,
        )
        self.extract = extractor(ctx)
        self._prompt: list[int] | None = None

    async def prompt(self) -> list[int]:
        if self._prompt is None:
            self._prompt = await question_prompt(self.ctx)
        return self._prompt

    def trace(self, index: int, completion: Completion) -> Trace:
        stats = confidence_stats(completion.top_logprobs, self.config.window, self.config.tail)
        if stats is None and completion.num_tokens:
            stats = self._stored(completion)
        answer = self.extract(completion.text)
        key = canonical_answer(answer, self.ctx.question.dataset)
        # An empty trace has no confidence, and no answer to vote for.
        stats = stats or ConfidenceStats(0.0, 0.0, 0.0)
        return Trace(index, answer, key, stats, completion.finish_reason == "abort")

    def _stored(self, completion: Completion) -> ConfidenceStats:
        """The statistics a replayed pool stored with the sample (computed in the live run,
        with that run's window and tail)."""
        lookup = getattr(self.ctx.engine, "stored_confidence", None)
        stored = lookup(completion) if lookup is not None else None
        if stored is None:
            raise ValueError(
                f"deepconf needs top-k logprobs or stored confidence; {self.ctx.engine.name} "
                "gave neither"
            )
        return ConfidenceStats(**stored)

    async def draw(self, index: int) -> Trace:
        completion = await self.ctx.generate(
            await self.prompt(), self.spec, sample_index=index, phase="sample", extract=self.extract
        )
        return self.trace(index, completion)

    async def draw_until(self, index: int, threshold: float) -> Trace:
        stop = GroupConfidenceStop(threshold, self.config.window)
        completion = await self.ctx.generate_until(
            await self.prompt(),
            self.spec,
            stop,
            sample_index=index,
            phase="sample",
            extract=self.extract,
            rule=f"deepconf-group<{threshold!r}/{self.config.window}",
        )
        if completion.num_tokens and not completion.top_logprobs:
            # A stored pool keeps statistics, not tokens' confidences: where a trace would
            # have stopped, and so what it cost, is unknown.
            raise ValueError(
                f"online deepconf needs per-token confidence, which {self.ctx.engine.name} "
                "does not give; replay a pool with mode=offline"
            )
        return self.trace(index, completion)


async def _offline(ctx: StrategyContext, config: DeepConfConfig, tracer: TraceDrawer) -> Outcome:
    traces = list(await asyncio.gather(*(tracer.draw(i) for i in range(ctx.budget))))
    confidences = [t.confidence(config.confidence) for t in traces]
    kept = set(top_percent(confidences, config.keep_percent))
    for trace in traces:
        if trace.index not in kept:
            ctx.mark_discarded(trace.index)
    voters = [traces[i] for i in sorted(kept)]
    weights = [confidences[t.index] for t in voters]
    vote = weighted_vote([t.answer for t in voters], weights, ctx.question.dataset)
    detail: dict[str, Any] = {
        "mode": "offline",
        "confidence": config.confidence,
        "confidences": confidences,
        "kept": sorted(kept),
        "votes": vote.counts,
    }
    return Outcome(vote.winner, StopReason.BUDGET_REACHED, len(traces), detail)


async def _online(ctx: StrategyContext, config: DeepConfConfig, tracer: TraceDrawer) -> Outcome:
    warmup = min(config.warmup, ctx.budget)
    traces = list(await asyncio.gather(*(tracer.draw(i) for i in range(warmup))))
    threshold = keep_threshold(
        [t.stats.lowest_group_confidence for t in traces], config.keep_percent
    )
    dataset = ctx.question.dataset

    def voters() -> list[Trace]:
        return [
            t
            for t in traces
            if not t.aborted and t.stats.lowest_group_confidence >= threshold and t.key is not None
        ]

    def share() -> float:
        chosen = voters()
        weights = [t.stats.lowest_group_confidence for t in chosen]
        return consensus_share([t.answer for t in chosen], weights, dataset)

    while share() < config.consensus and len(traces) < ctx.budget:
        traces.append(await tracer.draw_until(len(traces), threshold))
    reason = StopReason.CONSENSUS if share() >= config.consensus else StopReason.CAP
    chosen = voters()
    voting = {t.index for t in chosen}
    for trace in traces:
        if trace.index not in voting:
            ctx.mark_discarded(trace.index)
    weights = [t.stats.lowest_group_confidence for t in chosen]
    vote = weighted_vote([t.answer for t in chosen], weights, dataset)
    detail: dict[str, Any] = {
        "mode": "online",
        "threshold": threshold,
        "warmup": warmup,
        "aborted": [t.index for t in traces if t.aborted],
        "voters": sorted(voting),
        "consensus_share": share(),
        "votes": vote.counts,
    }
    return Outcome(vote.winner, reason, len(traces), detail)


@strategy(DeepConfConfig, order=100)
async def deepconf(ctx: StrategyContext, config: DeepConfConfig) -> Outcome:
    """Offline: N_max = ``ctx.budget`` traces, filtered and weighted by confidence. Online:
    warm-up, then streamed traces aborted below the bar, until consensus or N_max."""
    tracer = TraceDrawer(ctx, config)
    if config.mode == "offline":
        return await _offline(ctx, config, tracer)
    return await _online(ctx, config, tracer)
