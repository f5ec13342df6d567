"""OpenAICompatibleEngine: top-k logprobs and streamed early stops, on a mock transport."""

from __future__ import annotations

import asyncio
import json
import math
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from ttscale.engines.base import SamplingSpec, StreamingEngine, TopLogprobs, generate_until
from ttscale.engines.config import OpenAIEngineConfig
from ttscale.engines.openai import OpenAICompatibleEngine
from ttscale.errors import EngineRejectedError, EngineRequestError

LOG = math.log


def _engine(handler: Any) -> OpenAICompatibleEngine:
    config = OpenAIEngineConfig(base_url="http://llm.test/v1", model="m", vocab_size=50)
    return OpenAICompatibleEngine(config, transport=httpx.MockTransport(handler))


def _position(token: int, probabilities: dict[int, float]) -> dict[str, Any]:
    """One token's logprob entries as vLLM writes them (tokens as "token_id:N")."""
    return {f"token_id:{t}": LOG(p) for t, p in probabilities.items()} | {
        f"token_id:{token}": LOG(probabilities.get(token, 0.01))
    }


# Five tokens; token 9 at position 2 is sampled although it is not in the top 2.
TOKENS = [4, 5, 9, 6, 7]
TOPS = [{4: 0.6, 1: 0.3}, {5: 0.5, 2: 0.4}, {3: 0.5, 8: 0.3}, {6: 0.9, 1: 0.05}, {7: 0.2, 2: 0.1}]


def _chunk(i: int, finish: str | None = None) -> dict[str, Any]:
    token = TOKENS[i]
    logprobs = {
        "tokens": [f"token_id:{token}"],
        "token_logprobs": [LOG(TOPS[i].get(token, 0.01))],
        "top_logprobs": [_position(token, TOPS[i])],
    }
    choice = {"index": 0, "text": f"t{i}", "token_ids": [token], "logprobs": logprobs,
              "finish_reason": finish, "stop_reason": None}  # fmt: skip
    return {"choices": [choice]}


def _expected_top(i: int) -> TopLogprobs:
    return tuple(sorted((LOG(p) for p in TOPS[i].values()), reverse=True))


def test_whole_completion_carries_top_k_logprobs() -> None:
    asked: list[dict[str, Any]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        asked.append(json.loads(request.content))
        chunks = [_chunk(i)["choices"][0] for i in range(5)]
        merged = {
            key: [v for c in chunks for v in c["logprobs"][key]] for key in chunks[0]["logprobs"]
        }
        choice = {"index": 0, "text": "".join(c["text"] for c in chunks), "token_ids": TOKENS,
                  "logprobs": merged, "finish_reason": "length", "stop_reason": None}  # fmt: skip
        return httpx.Response(200, json={"choices": [choice], "usage": {"prompt_tokens": 3}})

    engine = _engine(handler)
    spec = SamplingSpec(max_tokens=5, top_logprobs=2)
    (completion,) = asyncio.run(engine.generate([1, 2, 3], spec)).completions
    assert asked[0]["logprobs"] == 2
    # The top two by value, the sampled token left out where it ranks lower (position 2).
    assert completion.top_logprobs == tuple(_expected_top(i) for i in range(5))
    assert completion.vocab_size == 50


def _stream(consumed: list[int], chunks: list[dict[str, Any]]) -> AsyncIterator[bytes]:
    async def lines() -> AsyncIterator[bytes]:
        for chunk in chunks:
            consumed.append(1)
            yield f"data: {json.dumps(chunk)}\n\n".encode()
        yield b'data: {"choices": [], "usage": {"prompt_tokens": 3}}\n\n'
        yield b"data: [DONE]\n\n"

    return lines()


def test_stream_is_closed_where_the_stop_fires() -> None:
    consumed: list[int] = []
    asked: list[dict[str, Any]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        asked.append(json.loads(request.content))
        chunks = [_chunk(i, "length" if i == 4 else None) for i in range(5)]
        return httpx.Response(200, content=_stream(consumed, chunks))

    engine = _engine(handler)
    assert isinstance(engine, StreamingEngine)
    spec = SamplingSpec(max_tokens=5, seed=4, top_logprobs=2)
    seen: list[TopLogprobs] = []

    def third(top: TopLogprobs) -> bool:
        seen.append(top)
        return len(seen) == 3

    generation = asyncio.run(generate_until(engine, [1, 2, 3], spec, third))
    (completion,) = generation.completions
    assert asked[0]["stream"] is True and asked[0]["logprobs"] == 2
    assert completion.finish_reason == "abort" and completion.early_stop_at == 3
    assert completion.token_ids == tuple(TOKENS[:3]) and completion.text == "t0t1t2"
    assert seen == [_expected_top(i) for i in range(3)]
    assert len(consumed) == 3  # the rest was never read: the stream was closed
    # No usage chunk was read before the close: the prompt is counted from the request.
    assert generation.prompt_tokens == 3

    consumed.clear()
    (whole,) = asyncio.run(generate_until(engine, [1, 2, 3], spec, lambda _: False)).completions
    assert whole.finish_reason == "length" and whole.token_ids == tuple(TOKENS)
    assert whole.early_stop_at is None and len(consumed) == 5
    assert whole.cumulative_logprob == pytest.approx(
        sum(LOG(TOPS[i].get(t, 0.01)) for i, t in enumerate(TOKENS))
    )


@pytest.mark.parametrize(
    ("status", "expected"), [(503, EngineRequestError), (400, EngineRejectedError)]
)
def test_stream_errors_map_like_whole_requests(status: int, expected: type[Exception]) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(status, json={"error": {"message": "nope"}})

    spec = SamplingSpec(max_tokens=5, top_logprobs=2)
    with pytest.raises(expected, match="nope"):
        asyncio.run(_engine(handler).generate_until([1], spec, lambda _: False))


def test_a_stream_cut_short_is_a_request_error() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        body = f"data: {json.dumps(_chunk(0))}\n\n".encode()
        return httpx.Response(200, content=body)

    spec = SamplingSpec(max_tokens=5, top_logprobs=2)
    with pytest.raises(EngineRequestError, match="ended before"):
        asyncio.run(_engine(handler).generate_until([1], spec, lambda _: False))
