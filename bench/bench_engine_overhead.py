"""Engine overhead: generated tokens/s of a ttscale shard ÷ raw vLLM generate, same run.

Same model, same prompts, same sampling and seeds; the raw side calls ``AsyncLLM.generate``
directly. Prints ratios (issue 11's target: every strategy ≥ 0.95), not pass/fail.

A shard's tokens are counted as the ledger counts a run's generated tokens
(``records.generated_tokens`` of every call), so online DeepConf's aborted traces count with
every token vLLM handed out before the abort, though they do not vote. DeepConf asks for top-k
logprobs, which cost vLLM time of their own, so its row is divided by a raw run that asks for
the same logprobs (its ratio to the plain raw run is printed beside it). Its settings default
to ones that make it stream and abort at this scale: a group window of a quarter of
``--max-tokens`` (a trace shorter than the window is never aborted) and a bar at the median of
the warm-up (keep 50 %; at keep 10 % a single warm-up trace votes, so it is unanimous at once
and no trace is ever streamed).

    .venv/bin/python bench/bench_engine_overhead.py [--samples 8] [--max-tokens 128]
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from importlib.resources import files
from pathlib import Path
from typing import Any

from ttscale.engines import VLLMEngineConfig, create_engine
from ttscale.engines.base import SamplingSpec
from ttscale.inputs import load_batch
from ttscale.prompts import ModelProfile, question_messages, resolve_profile
from ttscale.records import UnitResult, generated_tokens
from ttscale.runner import expand_units, run_shard_units
from ttscale.schemas import Question
from ttscale.service import PartWriter, ShardLayout
from ttscale.storage import LocalStore
from ttscale.strategies.base import derive_seed
from ttscale.strategies.config import StrategyConfigBase
from ttscale.strategies.kinds.adaptive_consistency import AdaptiveConsistencyConfig
from ttscale.strategies.kinds.deepconf import DeepConfConfig
from ttscale.strategies.kinds.majority import MajorityConfig

TARGET = 0.95
"""Issue 11: every strategy at ≥ 0.95 of raw ``AsyncLLM`` throughput."""


async def raw_generate_tokens(
    engine: Any, prompts: Sequence[Sequence[int]], specs: Sequence[SamplingSpec], tag: str = "raw"
) -> int:
    """Completion tokens of ``prompts`` sent straight to ``AsyncLLM`` (no ttscale in the path).

    The baseline: same engine (a ``VLLMEngine``), same sampling, none of the strategy, recording
    or retry machinery. It reaches into the engine's ``AsyncLLM`` on purpose.
    """
    from vllm import SamplingParams, TokensPrompt
    from vllm.sampling_params import RequestOutputKind

    from ttscale.engines.vllm import _sampling_params

    llm = engine._llm
    if llm is None:
        raise RuntimeError(f"{engine.name} is closed")

    async def one(index: int, prompt: Sequence[int], spec: SamplingSpec) -> int:
        params = _sampling_params(SamplingParams, RequestOutputKind, spec)
        final = None
        request_id = f"{tag}-{engine._run_tag}-{spec.top_logprobs}-{index}"
        async for output in llm.generate(
            TokensPrompt(prompt_token_ids=list(prompt)), params, request_id
        ):
            final = output
        return sum(len(o.token_ids) for o in final.outputs) if final else 0

    counts = await asyncio.gather(
        *(one(i, p, s) for i, (p, s) in enumerate(zip(prompts, specs, strict=True)))
    )
    return sum(counts)


class KeepingSink:
    """Writes each result to the shard's part, as a run does, and keeps it to be counted."""

    def __init__(self, writer: PartWriter) -> None:
        self.writer = writer
        self.results: list[UnitResult] = []

    def add(self, result: UnitResult) -> None:
        self.writer.add(result)
        self.results.append(result)

    def flush(self) -> None:
        self.writer.flush()


@dataclass(frozen=True)
class ShardTokens:
    """What a shard generated, counted as the ledger counts it."""

    generated: int
    aborted: int
    """Of ``generated``: tokens of calls vLLM aborted (online DeepConf's stopped traces)."""
    aborted_calls: int
    calls: int

    @classmethod
    def of(cls, results: Sequence[UnitResult]) -> ShardTokens:
        calls = [c for r in results for c in r.calls]
        aborted = [c for c in calls if c.finish_reason == "abort"]
        return cls(
            generated=sum(generated_tokens(c) for c in calls),
            aborted=sum(generated_tokens(c) for c in aborted),
            aborted_calls=len(aborted),
            calls=len(calls),
        )


async def run_strategy(
    engine: Any,
    profile: ModelProfile,
    questions: list[Question],
    strategy: StrategyConfigBase,
    seed: int,
) -> tuple[ShardTokens, float]:
    """One shard of ``questions`` × ``strategy`` as a run executes it; its tokens and seconds."""
    with tempfile.TemporaryDirectory() as tmp:
        sink = KeepingSink(PartWriter(LocalStore(Path(tmp)), ShardLayout("shard")))
        started = time.perf_counter()
        await run_shard_units(engine, profile, questions, expand_units([strategy]),
                              run_id="bench", run_seed=seed, skip=set(), writer=sink)  # fmt: skip
        seconds = time.perf_counter() - started
    failed = [r.error.message for r in sink.results if r.error is not None]
    if failed:
        raise RuntimeError(f"{strategy.kind}: {len(failed)} units failed, first: {failed[0]}")
    return ShardTokens.of(sink.results), seconds


def ratio_line(ratio: float) -> str:
    return f"ratio to raw {ratio:.3f} ({'meets' if ratio >= TARGET else 'below'} ≥ {TARGET})"


async def main(args: argparse.Namespace) -> None:
    config = VLLMEngineConfig(model=args.model)
    engine = await create_engine(config)
    profile = resolve_profile("auto", args.model)
    questions = load_batch(str(files("ttscale") / "data" / "demo.jsonl")).questions[: args.items]
    prompts = [await engine.achat_prompt(question_messages(profile, q.question)) for q in questions]
    deepconf = DeepConfConfig(
        n=[args.samples],
        max_tokens=args.max_tokens,
        warmup=args.deepconf_warmup or max(1, args.samples // 2),
        window=args.deepconf_window or max(1, args.max_tokens // 4),
        keep_percent=args.deepconf_keep_percent,
    )

    def spec(question_id: str, i: int, top_logprobs: int = 0) -> SamplingSpec:
        return SamplingSpec(max_tokens=args.max_tokens, temperature=0.7, top_p=0.95,
                            seed=derive_seed(args.seed, question_id, i, 0),
                            top_logprobs=top_logprobs)  # fmt: skip

    async def raw_rates(when: str) -> dict[int, float]:
        """Raw tok/s, plain and with DeepConf's top-k logprobs."""
        rates: dict[int, float] = {}
        for top_logprobs in (0, deepconf.top_logprobs):
            specs = [spec(q.id, i, top_logprobs) for q in questions for i in range(args.samples)]
            started = time.perf_counter()
            tokens = await raw_generate_tokens(engine, raw_prompts, specs, tag=when.split()[0])
            rates[top_logprobs] = tokens / (time.perf_counter() - started)
            asked = f" with top-{top_logprobs} logprobs" if top_logprobs else ""
            print(f"raw vLLM generate{asked} ({when}): {tokens} tokens, "
                  f"{rates[top_logprobs]:.1f} tok/s")  # fmt: skip
        return rates

    await raw_generate_tokens(engine, prompts[:2], [spec("warmup", 0)] * 2)  # warm up
    raw_prompts = [p for p in prompts for _ in range(args.samples)]
    before = await raw_rates("before the shards")

    strategies: dict[str, StrategyConfigBase] = {
        "majority": MajorityConfig(n=[args.samples], max_tokens=args.max_tokens),
        "adaptive_consistency": AdaptiveConsistencyConfig(
            n=[args.samples], max_tokens=args.max_tokens
        ),
        "deepconf": deepconf,
    }
    measured = [
        (name, *await run_strategy(engine, profile, questions, strategy, args.seed))
        for name, strategy in strategies.items()
    ]
    # Raw again after the shards: on a shared machine the load drifts, so each row is divided
    # by the mean of the raw rates that bracket it (both printed, so the drift shows).
    after = await raw_rates("after the shards")
    baseline = {k: (before[k] + after[k]) / 2 for k in before}
    for name, tokens, seconds in measured:
        strategy = strategies[name]
        rate = tokens.generated / seconds
        top_logprobs = deepconf.top_logprobs if strategy is deepconf else 0
        line = f"ttscale shard ({name}): {tokens.generated} tokens generated, {rate:.1f} tok/s, "
        if strategy is deepconf:
            line += (
                f"{tokens.aborted} of them in {tokens.aborted_calls} of {tokens.calls} traces "
                f"aborted (window {deepconf.window}, warm-up {deepconf.warmup}, keep "
                f"{deepconf.keep_percent:g} %); against raw "
                f"with top-{top_logprobs} logprobs: {ratio_line(rate / baseline[top_logprobs])}; "
                f"against plain raw: {rate / baseline[0]:.3f}"
            )
        else:
            line += ratio_line(rate / baseline[0])
        print(line)
    await engine.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", default="embedded:smollm2-135m")
    parser.add_argument("--items", type=int, default=24)
    parser.add_argument("--samples", type=int, default=8)
    parser.add_argument("--max-tokens", type=int, default=128)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--deepconf-warmup", type=int, default=0, help="DeepConf warm-up traces (0: samples / 2)"
    )
    parser.add_argument(
        "--deepconf-window",
        type=int,
        default=0,
        help="DeepConf group window in tokens (0: max tokens / 4)",
    )
    parser.add_argument(
        "--deepconf-keep-percent", type=float, default=50.0, help="DeepConf keep top η %%"
    )
    asyncio.run(main(parser.parse_args()))
