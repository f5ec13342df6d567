"""VLLMEngine on a real vLLM (CPU) engine serving a tiny random model."""

from __future__ import annotations

import asyncio
import math
import re
from typing import Any

import pytest

from ttscale.engines.base import Engine, SamplingSpec
from ttscale.engines.vllm import VLLMEngine
from ttscale.errors import EngineDeadError, EngineRequestError

pytest.importorskip("vllm", reason="vllm is not installed (pip install -e '.[cpu]')")

pytestmark = pytest.mark.slow

QUESTION = [{"role": "user", "content": "What is 12 plus 7?"}]


def _prompt(runner: Any) -> list[int]:
    return list(runner.engine.chat_prompt(QUESTION))


def test_is_an_engine(tiny_vllm: Any) -> None:
    assert isinstance(tiny_vllm.engine, Engine)
    versions = tiny_vllm.engine.versions()
    assert versions["device"] == "cpu"
    assert versions["dtype"] == "float32"
    assert set(versions) >= {"vllm", "torch", "model_path"}


def test_n_completions_with_exact_token_accounting(tiny_vllm: Any) -> None:
    prompt = _prompt(tiny_vllm)
    spec = SamplingSpec(max_tokens=12, temperature=1.0, n=4, seed=3)
    generation = tiny_vllm.run(tiny_vllm.engine.generate(prompt, spec))
    assert len(generation.completions) == 4
    assert generation.prompt_tokens == len(prompt)
    assert generation.latency_s > 0
    for completion in generation.completions:
        assert completion.num_tokens == len(completion.token_ids) <= 12
        assert len(completion.token_logprobs) == completion.num_tokens
        assert all(logprob <= 0 for logprob in completion.token_logprobs)
        assert completion.cumulative_logprob is not None
        assert math.isclose(
            sum(completion.token_logprobs), completion.cumulative_logprob, abs_tol=1e-3
        )


def test_max_tokens_ends_with_length(tiny_vllm: Any) -> None:
    spec = SamplingSpec(max_tokens=5, temperature=1.0, n=3, seed=11)
    generation = tiny_vllm.run(tiny_vllm.engine.generate(_prompt(tiny_vllm), spec))
    for completion in generation.completions:
        assert completion.finish_reason == "length"
        assert completion.num_tokens == 5
        assert completion.stop_reason is None


def test_logprobs_can_be_left_out(tiny_vllm: Any) -> None:
    spec = SamplingSpec(max_tokens=4, temperature=1.0, seed=1, logprobs=False)
    (completion,) = tiny_vllm.run(tiny_vllm.engine.generate(_prompt(tiny_vllm), spec)).completions
    assert completion.token_logprobs == ()
    assert completion.num_tokens == 4


def test_same_seed_same_output(tiny_vllm: Any) -> None:
    prompt = _prompt(tiny_vllm)
    spec = SamplingSpec(max_tokens=16, temperature=1.0, n=2, seed=1234)
    first = tiny_vllm.run(tiny_vllm.engine.generate(prompt, spec))
    second = tiny_vllm.run(tiny_vllm.engine.generate(prompt, spec))
    assert [c.token_ids for c in first.completions] == [c.token_ids for c in second.completions]
    other = tiny_vllm.run(
        tiny_vllm.engine.generate(prompt, SamplingSpec(max_tokens=16, temperature=1.0, seed=99))
    )
    assert other.completions[0].token_ids != first.completions[0].token_ids


def test_stop_string_ends_generation_and_is_kept(tiny_vllm: Any) -> None:
    prompt = _prompt(tiny_vllm)
    free = SamplingSpec(max_tokens=40, temperature=1.0, seed=5)
    (unstopped,) = tiny_vllm.run(tiny_vllm.engine.generate(prompt, free)).completions
    # A stop string taken from the seeded output itself is certain to be generated again.
    runs = re.findall(r"[A-Za-z0-9]{2,}", unstopped.text[1:])
    assert runs, f"no alphanumeric run in {unstopped.text!r}"
    stop = runs[0][:2]
    spec = SamplingSpec(max_tokens=40, temperature=1.0, seed=5, stop=(stop,))
    (stopped,) = tiny_vllm.run(tiny_vllm.engine.generate(prompt, spec)).completions
    assert stopped.finish_reason == "stop"
    assert stopped.stop_reason == stop
    assert stopped.text.endswith(stop)
    assert stopped.num_tokens < unstopped.num_tokens
    assert unstopped.token_ids[: stopped.num_tokens] == stopped.token_ids
    # The ids hold the stop text too, so prompt + ids continues exactly where the text ends.
    assert tiny_vllm.engine.decode(stopped.token_ids).startswith(stopped.text)


def test_stop_token_id_is_in_token_ids(tiny_vllm: Any) -> None:
    prompt = _prompt(tiny_vllm)
    free = SamplingSpec(max_tokens=20, temperature=1.0, seed=8)
    (unstopped,) = tiny_vllm.run(tiny_vllm.engine.generate(prompt, free)).completions
    stop_id = unstopped.token_ids[6]
    first_index = unstopped.token_ids.index(stop_id)
    spec = SamplingSpec(max_tokens=20, temperature=1.0, seed=8, stop_token_ids=(stop_id,))
    (stopped,) = tiny_vllm.run(tiny_vllm.engine.generate(prompt, spec)).completions
    assert stopped.finish_reason == "stop"
    assert stopped.stop_reason == stop_id
    assert stopped.token_ids == unstopped.token_ids[: first_index + 1]


def test_continuation_from_prompt_plus_completion(tiny_vllm: Any) -> None:
    prompt = _prompt(tiny_vllm)
    spec = SamplingSpec(max_tokens=8, temperature=0.0)
    (first,) = tiny_vllm.run(tiny_vllm.engine.generate(prompt, spec)).completions
    extended = prompt + list(first.token_ids) + tiny_vllm.engine.encode(" Wait")
    generation = tiny_vllm.run(tiny_vllm.engine.generate(extended, spec))
    assert generation.prompt_tokens == len(extended)
    assert generation.completions[0].num_tokens == 8


def test_concurrent_requests_each_get_their_own_completions(tiny_vllm: Any) -> None:
    # Whether concurrent requests overlap in time (batching) is a speed question, measured by
    # bench/bench_vllm_batching.py; here only what is deterministic.
    engine = tiny_vllm.engine
    prompt = _prompt(tiny_vllm)

    async def many() -> list[Any]:
        return await asyncio.gather(
            *(
                engine.generate(prompt, SamplingSpec(max_tokens=32, temperature=1.0, n=4, seed=i))
                for i in range(16)
            )
        )

    generations = tiny_vllm.run(many())
    assert len(generations) == 16
    assert all(len(g.completions) == 4 for g in generations)
    assert all(g.prompt_tokens == len(prompt) for g in generations)
    for g in generations:
        for c in g.completions:
            assert 1 <= c.num_tokens <= 32 and len(c.token_ids) == c.num_tokens
        assert math.isfinite(g.latency_s) and g.latency_s >= 0.0
    # Seeded: the same request again, alone, gives the same tokens as in the concurrent batch.
    again = tiny_vllm.run(
        engine.generate(prompt, SamplingSpec(max_tokens=32, temperature=1.0, n=4, seed=3))
    )
    assert [c.token_ids for c in again.completions] == [
        c.token_ids for c in generations[3].completions
    ]


def test_too_long_prompt_is_a_request_error_and_engine_lives_on(tiny_vllm: Any) -> None:
    engine = tiny_vllm.engine
    too_long = engine.encode("1 2 3 4 5 6 7 8 9 ") * 200
    with pytest.raises(EngineRequestError):
        tiny_vllm.run(engine.generate(too_long, SamplingSpec(max_tokens=4)))
    generation = tiny_vllm.run(engine.generate(_prompt(tiny_vllm), SamplingSpec(max_tokens=4)))
    assert generation.completions[0].num_tokens == 4


def test_encode_decode_round_trip(tiny_vllm: Any) -> None:
    text = "What is 12 plus 7? Wait. Final Answer: 19"
    ids = tiny_vllm.engine.encode(text)
    assert ids and all(isinstance(token, int) for token in ids)
    assert tiny_vllm.engine.decode(ids) == text


def test_chat_prompt_ends_in_open_assistant_turn(tiny_vllm: Any) -> None:
    engine = tiny_vllm.engine
    ids = engine.chat_prompt(QUESTION)
    assert all(isinstance(token, int) for token in ids)
    opening = engine.encode("<|im_start|>assistant\n")
    assert ids[-len(opening) :] == opening
    assert "What is 12 plus 7?" in engine.decode(ids)


class _DeadLLM:
    """Stands in for AsyncLLM: every request fails the way a dead engine core fails."""

    errored = True

    def generate(self, *args: Any, **kwargs: Any) -> Any:
        from vllm.v1.engine.exceptions import EngineDeadError as VLLMEngineDeadError

        raise VLLMEngineDeadError()

    def shutdown(self) -> None:
        pass


class _FailingLLM(_DeadLLM):
    errored = False

    def generate(self, *args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("CPU Generator does not use offset")


@pytest.mark.parametrize(
    ("llm", "expected"), [(_DeadLLM(), EngineDeadError), (_FailingLLM(), EngineRequestError)]
)
def test_vllm_errors_map_to_ours(llm: Any, expected: type[Exception]) -> None:
    engine = VLLMEngine(llm, tokenizer=None, model="/m", versions={})
    with pytest.raises(expected):
        asyncio.run(engine.generate([1, 2, 3], SamplingSpec(max_tokens=2)))


def test_closed_engine_is_dead() -> None:
    engine = VLLMEngine(_FailingLLM(), tokenizer=None, model="/m", versions={})
    asyncio.run(engine.close())
    with pytest.raises(EngineDeadError):
        asyncio.run(engine.generate([1], SamplingSpec(max_tokens=2)))
