"""Engine overhead: generated tokens/s of a ttscale shard ÷ raw vLLM generate, same run.

Same model, same prompts, same sampling and seeds; the raw side calls ``AsyncLLM.generate``
directly. Prints ratios (target ≥ 0.9), not pass/fail.

    .venv/bin/python bench/bench_engine_overhead.py [--samples 8] [--max-tokens 128]
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from collections.abc import Sequence
from importlib.resources import files
from pathlib import Path
from typing import Any

from ttscale.engines import VLLMEngineConfig, create_engine
from ttscale.engines.base import SamplingSpec
from ttscale.inputs import load_batch
from ttscale.prompts import question_messages, resolve_profile
from ttscale.runner import expand_units, run_shard_units
from ttscale.service import PartWriter, ShardLayout
from ttscale.storage import LocalStore
from ttscale.strategies.base import derive_seed
from ttscale.strategies.config import AdaptiveConsistencyConfig, MajorityConfig


async def raw_generate_tokens(
    engine: Any, prompts: Sequence[Sequence[int]], specs: Sequence[SamplingSpec]
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
        async for output in llm.generate(
            TokensPrompt(prompt_token_ids=list(prompt)), params, f"raw-{engine._run_tag}-{index}"
        ):
            final = output
        return sum(len(o.token_ids) for o in final.outputs) if final else 0

    counts = await asyncio.gather(
        *(one(i, p, s) for i, (p, s) in enumerate(zip(prompts, specs, strict=True)))
    )
    return sum(counts)


async def main(args: argparse.Namespace) -> None:
    config = VLLMEngineConfig(model=args.model)
    engine = await create_engine(config)
    profile = resolve_profile("auto", args.model)
    questions = load_batch(str(files("ttscale") / "data" / "demo.jsonl")).questions[: args.items]
    prompts = [await engine.achat_prompt(question_messages(profile, q.question)) for q in questions]

    def spec(question_id: str, i: int) -> SamplingSpec:
        return SamplingSpec(max_tokens=args.max_tokens, temperature=0.7, top_p=0.95,
                            seed=derive_seed(args.seed, question_id, i, 0))  # fmt: skip

    await raw_generate_tokens(engine, prompts[:2], [spec("warmup", 0)] * 2)  # warm up
    raw_prompts = [p for p in prompts for _ in range(args.samples)]
    raw_specs = [spec(q.id, i) for q in questions for i in range(args.samples)]
    started = time.perf_counter()
    raw_tokens = await raw_generate_tokens(engine, raw_prompts, raw_specs)
    raw_rate = raw_tokens / (time.perf_counter() - started)
    print(f"raw vLLM generate: {raw_tokens} tokens, {raw_rate:.1f} tok/s")

    strategies = {
        "majority": MajorityConfig(n=[args.samples], max_tokens=args.max_tokens),
        "adaptive_consistency": AdaptiveConsistencyConfig(
            n=[args.samples], max_tokens=args.max_tokens
        ),
    }
    for name, strategy in strategies.items():
        with tempfile.TemporaryDirectory() as tmp:
            writer = PartWriter(LocalStore(Path(tmp)), ShardLayout("shard"))
            tokens = 0

            def count(_units: int, total: int) -> None:
                nonlocal tokens
                tokens = total

            started = time.perf_counter()
            await run_shard_units(engine, profile, questions, expand_units([strategy]), run_id="bench",
                                  run_seed=args.seed, skip=set(), writer=writer, progress=count)  # fmt: skip
            rate = tokens / (time.perf_counter() - started)
        print(
            f"ttscale shard ({name}): {tokens} tokens, {rate:.1f} tok/s, ratio to raw {rate / raw_rate:.3f}"
        )
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
    asyncio.run(main(parser.parse_args()))
