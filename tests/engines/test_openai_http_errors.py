"""OpenAICompatibleEngine's failure policy against a real HTTP server on loopback (fast).

The server answers each path from a script of statuses, so a test sees how many requests the
engine made: 429 and 5xx are retried (tokenizer calls) or raised as retryable (generation, which
the strategy context retries); any other 4xx is a rejection, sent once.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from json_server import json_server

from ttscale.engines.base import SamplingSpec
from ttscale.engines.config import OpenAIEngineConfig
from ttscale.engines.openai import OpenAICompatibleEngine
from ttscale.errors import EngineRejectedError, EngineRequestError

COMPLETION = {
    "choices": [{"index": 0, "text": "ok", "token_ids": [5, 6], "finish_reason": "stop"}],
    "usage": {"prompt_tokens": 1},
}
OK_BODIES = {"/v1/completions": COMPLETION, "/tokenize": {"tokens": [1, 2]}}


@dataclass
class Script:
    """Statuses to answer per path, in order (then 200); the paths requested, in order."""

    statuses: dict[str, list[int]] = field(default_factory=dict)
    delay_s: float = 0.0
    seen: list[str] = field(default_factory=list)

    def answer(self, path: str) -> tuple[int, dict[str, Any]]:
        self.seen.append(path)
        pending = self.statuses.get(path, [])
        status = pending.pop(0) if pending else 200
        if status != 200:
            return status, {"error": {"message": f"scripted {status}", "code": status}}
        return 200, OK_BODIES.get(path, {"prompt": "decoded"})


@pytest.fixture()
def server() -> Iterator[tuple[str, Script]]:
    script = Script()

    def answer(path: str, body: bytes) -> tuple[int, Any]:
        time.sleep(script.delay_s)
        return script.answer(path)

    with json_server(answer) as url:
        yield url, script


def _engine(base_url: str) -> OpenAICompatibleEngine:
    return OpenAICompatibleEngine(OpenAIEngineConfig(base_url=base_url, model="m"))


def _run(engine: OpenAICompatibleEngine, coroutine: Any) -> Any:
    async def main() -> Any:
        try:
            return await coroutine
        finally:
            await engine.close()

    return asyncio.run(main())


@pytest.mark.parametrize(
    ("status", "expected"),
    [(400, EngineRejectedError), (404, EngineRejectedError), (429, EngineRequestError),
     (503, EngineRequestError)],
)  # fmt: skip
def test_generation_classifies_statuses_and_sends_once(
    server: tuple[str, Script], status: int, expected: type[Exception]
) -> None:
    url, script = server
    script.statuses["/v1/completions"] = [status]
    engine = _engine(url)
    with pytest.raises(expected, match=f"HTTP {status}") as error:
        _run(engine, engine.generate([1], SamplingSpec(max_tokens=2)))
    assert type(error.value) is expected
    # Generation retries belong to the strategy context; the engine sends each request once.
    assert script.seen == ["/v1/completions"]


def test_tokenizer_calls_retry_429_and_5xx_then_succeed(server: tuple[str, Script]) -> None:
    url, script = server
    script.statuses["/tokenize"] = [503, 429]
    engine = _engine(url)
    assert _run(engine, engine.aencode("hi")) == [1, 2]
    assert script.seen == ["/tokenize"] * 3
    script.statuses["/detokenize"] = [502]
    assert engine.decode([1, 2]) == "decoded"
    assert script.seen[3:] == ["/detokenize"] * 2


def test_tokenizer_calls_never_retry_other_4xx(server: tuple[str, Script]) -> None:
    url, script = server
    script.statuses["/tokenize"] = [400, 400]
    engine = _engine(url)
    with pytest.raises(EngineRejectedError, match="HTTP 400"):
        _run(engine, engine.achat_prompt([{"role": "user", "content": "hi"}]))
    with pytest.raises(EngineRejectedError, match="HTTP 400"):
        engine.encode("hi")
    assert script.seen == ["/tokenize"] * 2


def test_tokenizer_retries_are_bounded(server: tuple[str, Script]) -> None:
    url, script = server
    script.statuses["/detokenize"] = [503] * 10
    engine = _engine(url)
    with pytest.raises(EngineRequestError, match="HTTP 503"):
        _run(engine, engine.adecode([1]))
    assert script.seen == ["/detokenize"] * 4  # POLICIES["engine"].attempts


def test_async_tokenizer_calls_leave_the_event_loop_free(server: tuple[str, Script]) -> None:
    url, script = server
    script.delay_s = 0.3
    engine = _engine(url)
    ticks = 0

    async def ticker(stop: asyncio.Event) -> None:
        nonlocal ticks
        while not stop.is_set():
            ticks += 1
            await asyncio.sleep(0.01)

    async def main() -> str:
        stop = asyncio.Event()
        task = asyncio.create_task(ticker(stop))
        text = await engine.adecode([1, 2])
        stop.set()
        await task
        return text

    assert _run(engine, main()) == "decoded"
    assert ticks >= 10, "the loop stalled while /detokenize was in flight"
