"""Concurrent requests to VLLMEngine overlap (continuous batching): a speed ratio, not pass/fail.

Sends R concurrent requests (n samples each) on the tiny random model that the engine tests use,
then the same requests one after another, and prints

- overlap = Σ per-request latency ÷ concurrent wall time (≈ 1 when requests run one at a time,
  up to R when they are fully batched; tests/engines used to assert > 4 at R = 16);
- speed-up = sequential wall time ÷ concurrent wall time.

    .venv/bin/python bench/bench_vllm_batching.py [--requests 16] [--samples 4] [--max-tokens 32]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from pathlib import Path

from ttscale.engines.base import SamplingSpec
from ttscale.engines.config import VLLMEngineConfig

# The tiny model is a test fixture (tests/tiny_model.py), not package code.
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from tiny_model import build_tiny_model

# As tests/engines/conftest.py's TINY_ENGINE_CONFIG.
TINY_ENGINE_CONFIG = VLLMEngineConfig(
    dtype="float32",
    max_model_len=512,
    max_num_seqs=64,
    max_num_batched_tokens=4096,
    cpu_kv_cache_gib=1,
)


async def main(args: argparse.Namespace) -> None:
    from ttscale.engines.vllm import VLLMEngine

    with tempfile.TemporaryDirectory() as tmp:
        model_dir = build_tiny_model(Path(tmp) / "tiny")
        engine = await VLLMEngine.create(TINY_ENGINE_CONFIG, model_dir)
        try:
            prompt = list(engine.chat_prompt([{"role": "user", "content": "What is 12 plus 7?"}]))

            def spec(i: int) -> SamplingSpec:
                return SamplingSpec(
                    max_tokens=args.max_tokens, temperature=1.0, n=args.samples, seed=i
                )

            await engine.generate(prompt, spec(-1))  # warm up
            started = time.perf_counter()
            generations = await asyncio.gather(
                *(engine.generate(prompt, spec(i)) for i in range(args.requests))
            )
            concurrent_wall = time.perf_counter() - started
            started = time.perf_counter()
            for i in range(args.requests):
                await engine.generate(prompt, spec(i))
            sequential_wall = time.perf_counter() - started
        finally:
            await engine.close()
    latency_sum = sum(g.latency_s for g in generations)
    tokens = sum(c.num_tokens for g in generations for c in g.completions)
    print(
        f"{args.requests} requests × n={args.samples}, {tokens} tokens: "
        f"concurrent {concurrent_wall:.3f} s, sequential {sequential_wall:.3f} s"
    )
    print(f"overlap (Σ latency ÷ concurrent wall): {latency_sum / concurrent_wall:.2f}")
    print(f"speed-up (sequential ÷ concurrent wall): {sequential_wall / concurrent_wall:.2f}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=16)
    parser.add_argument("--samples", type=int, default=4)
    parser.add_argument("--max-tokens", type=int, default=32)
    asyncio.run(main(parser.parse_args()))
