"""OpenAICompatibleEngine: against a real ``vllm serve`` (slow) and a mock transport (fast)."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Coroutine, Iterator
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest

from ttscale.engines.base import Engine, SamplingSpec, TopLogprobs, generate_until
from ttscale.engines.config import OpenAIEngineConfig
from ttscale.engines.openai import OpenAICompatibleEngine
from ttscale.errors import EngineRejectedError, EngineRequestError, EngineUnreachableError

T = TypeVar("T")

API_KEY = "sk-test-7f3a9c"
KEY_ENV = "TTSCALE_TEST_OPENAI_KEY"
SERVED_NAME = "tiny"
SERVER_START_TIMEOUT_S = 180
QUESTION = [{"role": "user", "content": "What is 12 plus 7?"}]


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _run(engine: OpenAICompatibleEngine, coroutine: Coroutine[Any, Any, T]) -> T:
    """Run ``coroutine`` on a fresh loop and close the engine's clients afterwards."""

    async def main() -> T:
        try:
            return await coroutine
        finally:
            await engine.close()

    return asyncio.run(main())


@pytest.fixture(scope="module")
def vllm_server(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A ``vllm serve`` subprocess on loopback serving the tiny model; yields its /v1 URL."""
    pytest.importorskip("vllm", reason="vllm is not installed (pip install -e '.[cpu]')")
    port = _free_port()
    log_path = tmp_path_factory.mktemp("vllm-server") / "server.log"
    env = {
        **os.environ,
        "VLLM_ENABLE_V1_MULTIPROCESSING": "0",
        "VLLM_CPU_KVCACHE_SPACE": "1",
    }
    command = [
        sys.executable, "-m", "vllm.entrypoints.openai.api_server",
        "--model", str(tiny_model_dir), "--served-model-name", SERVED_NAME,
        "--host", "127.0.0.1", "--port", str(port), "--api-key", API_KEY,
        "--enforce-eager", "--distributed-executor-backend", "uni", "--dtype", "float32",
        "--max-model-len", "512", "--max-num-seqs", "64", "--max-num-batched-tokens", "4096",
        "--disable-log-stats", "--disable-uvicorn-access-log",
    ]  # fmt: skip
    with log_path.open("wb") as log:
        # A new session, so teardown can stop the server and its engine-core child together.
        server = subprocess.Popen(
            command, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True
        )
    try:
        _wait_healthy(server, f"http://127.0.0.1:{port}/health", log_path)
        yield f"http://127.0.0.1:{port}/v1"
    finally:
        _stop(server)


def _wait_healthy(server: subprocess.Popen[bytes], url: str, log_path: Path) -> None:
    deadline = time.monotonic() + SERVER_START_TIMEOUT_S
    while time.monotonic() < deadline:
        if server.poll() is not None:
            tail = log_path.read_text(errors="replace")[-3000:]
            pytest.fail(f"vllm serve exited with {server.returncode}:\n{tail}")
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    tail = log_path.read_text(errors="replace")[-3000:]
    pytest.fail(f"vllm serve not healthy after {SERVER_START_TIMEOUT_S}s:\n{tail}")


def _stop(server: subprocess.Popen[bytes]) -> None:
    if server.poll() is not None:
        return
    os.killpg(server.pid, signal.SIGTERM)
    try:
        server.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(server.pid, signal.SIGKILL)
        server.wait(timeout=10)


@pytest.fixture
def served(vllm_server: str, monkeypatch: pytest.MonkeyPatch) -> OpenAICompatibleEngine:
    monkeypatch.setenv(KEY_ENV, API_KEY)
    config = OpenAIEngineConfig(base_url=vllm_server, model=SERVED_NAME, api_key_env=KEY_ENV)
    return OpenAICompatibleEngine(config)


# -- against a real vllm serve ----------------------------------------------------------------


@pytest.mark.slow
def test_generate_returns_exact_token_ids(served: OpenAICompatibleEngine) -> None:
    assert isinstance(served, Engine)
    prompt = served.chat_prompt(QUESTION)
    spec = SamplingSpec(max_tokens=12, temperature=1.0, n=3, seed=3)
    generation = _run(served, served.generate(prompt, spec))
    assert generation.prompt_tokens == len(prompt)
    assert len(generation.completions) == 3
    for completion in generation.completions:
        assert 0 < completion.num_tokens <= 12
        assert len(completion.token_logprobs) == completion.num_tokens
        assert completion.cumulative_logprob == pytest.approx(sum(completion.token_logprobs))
        assert served.decode(completion.token_ids).startswith(completion.text)


@pytest.mark.slow
def test_length_stop_and_seed(served: OpenAICompatibleEngine) -> None:
    prompt = served.chat_prompt(QUESTION)

    async def scenario() -> tuple[Any, Any, Any]:
        spec = SamplingSpec(max_tokens=6, temperature=1.0, n=2, seed=11)
        first = await served.generate(prompt, spec)
        again = await served.generate(prompt, spec)
        (free,) = (
            await served.generate(prompt, SamplingSpec(max_tokens=30, temperature=1.0, seed=5))
        ).completions
        # A stop string taken from the seeded output itself is certain to be generated again.
        stop = re.findall(r"[A-Za-z0-9]{2,}", free.text[1:])[0][:2]
        spec = SamplingSpec(max_tokens=30, temperature=1.0, seed=5, stop=(stop,))
        stopped = await served.generate(prompt, spec)
        return first, again, (free, stop, stopped.completions[0])

    first, again, (free, stop, stopped) = _run(served, scenario())
    assert [c.token_ids for c in first.completions] == [c.token_ids for c in again.completions]
    assert all(c.finish_reason == "length" and c.num_tokens == 6 for c in first.completions)
    assert stopped.finish_reason == "stop" and stopped.stop_reason == stop
    assert stopped.text.endswith(stop)
    assert free.token_ids[: stopped.num_tokens] == stopped.token_ids


@pytest.mark.slow
def test_streamed_stop_closes_the_request_early(served: OpenAICompatibleEngine) -> None:
    prompt = served.chat_prompt(QUESTION)
    spec = SamplingSpec(max_tokens=48, temperature=1.0, seed=9, top_logprobs=3)
    seen: list[TopLogprobs] = []

    def fifth(top: TopLogprobs) -> bool:
        seen.append(top)
        return len(seen) == 5

    async def scenario() -> tuple[Any, Any]:
        (whole,) = (await served.generate(prompt, spec)).completions
        (stopped,) = (await generate_until(served, prompt, spec, fifth)).completions
        return whole, stopped

    whole, stopped = _run(served, scenario())
    assert whole.num_tokens > 8 and len(whole.top_logprobs) == whole.num_tokens
    assert all(
        len(top) == 3 and list(top) == sorted(top, reverse=True) for top in whole.top_logprobs
    )
    assert stopped.finish_reason == "abort" and stopped.early_stop_at == 5 == len(seen)
    # Streamed and whole, the seeded draw is the same: the stopped trace is its prefix.
    assert 5 <= stopped.num_tokens < whole.num_tokens
    assert stopped.token_ids == whole.token_ids[: stopped.num_tokens]
    assert [list(t) for t in seen] == [
        pytest.approx(list(t), abs=1e-4) for t in whole.top_logprobs[:5]
    ]


@pytest.mark.slow
def test_continuation_and_concurrency(served: OpenAICompatibleEngine, tiny_model_dir: Path) -> None:
    from transformers import AutoTokenizer

    prompt = served.chat_prompt(QUESTION)

    async def scenario() -> tuple[Any, list[Any]]:
        spec = SamplingSpec(max_tokens=8, temperature=1.0, seed=1)
        (first,) = (await served.generate(prompt, spec)).completions
        extended = prompt + list(first.token_ids) + served.encode(" Wait")
        many = [
            served.generate(extended, SamplingSpec(max_tokens=16, temperature=1.0, n=2, seed=i))
            for i in range(16)
        ]
        return first, await asyncio.gather(*many)

    first, generations = _run(served, scenario())
    assert len(generations) == 16
    assert all(len(g.completions) == 2 for g in generations)
    # The server's prompt count, once per request (not per completion), is the model
    # tokenizer's own count: chat template + the first completion's tokens + " Wait".
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    chat = tokenizer.apply_chat_template(QUESTION, add_generation_prompt=True, tokenize=False)
    chat_ids = tokenizer.encode(chat, add_special_tokens=False)
    wait = tokenizer.encode(" Wait", add_special_tokens=False)
    expected = len(chat_ids) + len(first.token_ids) + len(wait)
    assert [g.prompt_tokens for g in generations] == [expected] * 16


@pytest.mark.slow
def test_tokenizer_endpoints(served: OpenAICompatibleEngine, tiny_model_dir: Path) -> None:
    text = "What is 12 plus 7? Wait. Final Answer: 19"
    ids = served.encode(text)
    assert served.decode(ids) == text
    chat = served.chat_prompt(QUESTION)
    assert chat[-len(served.encode("<|im_start|>assistant\n")) :] == served.encode(
        "<|im_start|>assistant\n"
    )
    local = OpenAICompatibleEngine(served.config, tokenizer_path=tiny_model_dir)
    assert local.encode(text) == ids
    assert local.decode(ids) == text
    assert served.versions()["server_vllm"] not in ("", "unknown")

    async def over_the_loop() -> tuple[list[int], str, list[int]]:
        # Uncached text, so aencode asks the server rather than the sync calls' cache.
        return (
            await served.aencode(text + " 20"),
            await served.adecode(ids),
            await served.achat_prompt(QUESTION),
        )

    async_ids, async_text, async_chat = _run(served, over_the_loop())
    assert async_ids == local.encode(text + " 20")
    assert async_text == text and async_chat == chat


@pytest.mark.slow
def test_client_errors_are_rejections_not_retried(
    served: OpenAICompatibleEngine, vllm_server: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A 4xx from a real server would fail the same way again: a fatal rejection, not a retry."""
    too_long = served.encode("1 2 3 4 5 6 7 8 9 ") * 200
    with pytest.raises(EngineRejectedError, match="HTTP 400") as too_long_error:
        _run(served, served.generate(too_long, SamplingSpec(max_tokens=4)))
    assert "context" in str(too_long_error.value).lower() or "length" in str(too_long_error.value)

    monkeypatch.setenv(KEY_ENV, "sk-wrong-key-1234")
    config = OpenAIEngineConfig(base_url=vllm_server, model=SERVED_NAME, api_key_env=KEY_ENV)
    wrong_key = OpenAICompatibleEngine(config)
    with pytest.raises(EngineRejectedError, match="HTTP 401") as unauthorized:
        _run(wrong_key, wrong_key.generate([1, 2], SamplingSpec(max_tokens=2)))
    assert "sk-wrong-key-1234" not in str(unauthorized.value)


# -- against a mock transport (fast) ----------------------------------------------------------


def _mock_engine(handler: Any, **config: Any) -> OpenAICompatibleEngine:
    settings = {"base_url": "http://llm.test/v1", "model": "m", "api_key_env": KEY_ENV, **config}
    return OpenAICompatibleEngine(
        OpenAIEngineConfig(**settings),
        transport=httpx.MockTransport(handler),
        sync_transport=httpx.MockTransport(handler),
    )


def _choice(index: int, token_ids: list[int] | None, **extra: Any) -> dict[str, Any]:
    return {"index": index, "text": "x" * len(token_ids or []), "token_ids": token_ids,
            "finish_reason": "length", "stop_reason": None, **extra}  # fmt: skip


@pytest.mark.parametrize(
    ("status", "body", "fragment", "expected"),
    [
        (500, {"error": {"message": "engine hiccup", "code": 500}}, "HTTP 500", EngineRequestError),
        (429, {"error": {"message": "queue full", "code": 429}}, "queue full", EngineRequestError),
        (503, "upstream down", "upstream down", EngineRequestError),
        (400, {"error": {"message": "max_tokens too large"}}, "too large", EngineRejectedError),
        (404, {"error": {"message": "no such model"}}, "no such model", EngineRejectedError),
    ],
)
def test_http_errors_retry_only_429_and_5xx(
    status: int,
    body: Any,
    fragment: str,
    expected: type[Exception],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(KEY_ENV, API_KEY)

    def handler(request: httpx.Request) -> httpx.Response:
        content = json.dumps(body) if not isinstance(body, str) else body
        return httpx.Response(status, content=content + f" echo {API_KEY}")

    engine = _mock_engine(handler)
    with pytest.raises(expected, match=fragment) as error:
        _run(engine, engine.generate([1], SamplingSpec(max_tokens=2)))
    assert type(error.value) is expected
    assert API_KEY not in str(error.value)


def test_connection_refused_is_unreachable() -> None:
    config = OpenAIEngineConfig(base_url=f"http://127.0.0.1:{_free_port()}/v1", model="m")
    engine = OpenAICompatibleEngine(config)
    for _ in range(2):
        with pytest.raises(EngineUnreachableError, match="ConnectError"):
            _run(engine, engine.generate([1], SamplingSpec(max_tokens=2)))
    with pytest.raises(EngineUnreachableError):
        engine.encode("hello")


def test_request_carries_token_prompt_and_bearer_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(KEY_ENV, API_KEY)
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        choices = [_choice(1, [7, 8]), _choice(0, [5], logprobs={"token_logprobs": [-0.5]})]
        return httpx.Response(200, json={"choices": choices, "usage": {"prompt_tokens": 3}})

    engine = _mock_engine(handler)
    spec = SamplingSpec(max_tokens=2, n=2, seed=4, stop=("\n",), logprobs=False)
    generation = _run(engine, engine.generate([1, 2, 3], spec))
    (request,) = seen
    assert request.url.path == "/v1/completions"
    assert request.headers["authorization"] == f"Bearer {API_KEY}"
    payload = json.loads(request.content)
    assert payload["prompt"] == [1, 2, 3]
    assert payload["seed"] == 4 and payload["n"] == 2 and payload["stop"] == ["\n"]
    assert payload["return_token_ids"] is True and payload["include_stop_str_in_output"] is True
    assert "logprobs" not in payload
    assert [c.token_ids for c in generation.completions] == [(5,), (7, 8)]
    assert generation.completions[0].token_logprobs == ()


def test_token_ids_fall_back_to_logprob_tokens() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        logprobs = {"tokens": ["token_id:42", "token_id:7"], "token_logprobs": [-1.0, -2.0]}
        choice = _choice(0, None, logprobs=logprobs)
        return httpx.Response(200, json={"choices": [choice], "usage": {"prompt_tokens": 1}})

    engine = _mock_engine(handler)
    (completion,) = _run(engine, engine.generate([1], SamplingSpec(max_tokens=2))).completions
    assert completion.token_ids == (42, 7)
    assert completion.cumulative_logprob == pytest.approx(-3.0)


def test_concurrency_is_capped() -> None:
    in_flight = 0
    most = 0

    async def handler(request: httpx.Request) -> httpx.Response:
        nonlocal in_flight, most
        in_flight += 1
        most = max(most, in_flight)
        await asyncio.sleep(0.01)
        in_flight -= 1
        body = {"choices": [_choice(0, [1])], "usage": {"prompt_tokens": 1}}
        return httpx.Response(200, json=body)

    engine = _mock_engine(handler, max_concurrency=3)

    async def many() -> list[Any]:
        spec = SamplingSpec(max_tokens=1, logprobs=False)
        return await asyncio.gather(*(engine.generate([1], spec) for _ in range(12)))

    assert len(_run(engine, many())) == 12
    assert most == 3
