"""An ``Engine`` over an OpenAI-compatible ``vllm serve`` endpoint, called with token-id prompts.

Prompts go to ``/v1/completions`` as lists of token ids and the generated ids come back
exactly (``return_token_ids``), so continuation needs no re-tokenization.

Failures follow ``ttscale.retry``: 429, 5xx and transport failures raise ``EngineRequestError``
(``EngineUnreachableError`` when nothing answered), any other 4xx ``EngineRejectedError``, which
no one retries. Generation is not retried here: the strategy context retries it (policy
"engine"), and retrying here too would multiply the attempts. The tokenizer endpoints have no
caller that retries, so they are retried here with the same policy.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from ttscale.engines.base import (
    Completion,
    EarlyStop,
    Generation,
    SamplingSpec,
)
from ttscale.engines.config import OpenAIEngineConfig
from ttscale.engines.openai_choices import (
    FINISH_REASONS,
    StreamError,
    choice_token_ids,
    completions_payload,
    stream_completion,
    top_logprobs,
)
from ttscale.errors import (
    ConfigError,
    EngineRejectedError,
    EngineRequestError,
    EngineUnreachableError,
)
from ttscale.retry import async_retrying, is_retryable_status, retrying

_MAX_MESSAGE_CHARS = 500
_TOKEN_CACHE_SIZE = 4096
_TOKENIZER_CONNECTIONS = 4
"""Connections beyond ``max_concurrency``, so tokenizer calls never queue behind generations."""


@dataclass
class _LoopClient:
    """An async client and concurrency cap, both bound to the event loop that made them."""

    loop: asyncio.AbstractEventLoop
    client: httpx.AsyncClient
    slots: asyncio.Semaphore


class OpenAICompatibleEngine:
    """Generation over HTTP from a vLLM OpenAI-compatible server.

    ``tokenizer_path`` (the model's folder, or one with its tokenizer files) makes
    ``encode``/``decode`` local;
    without it they call the server's ``/tokenize`` and ``/detokenize``. ``chat_prompt``
    always asks the server, so the served chat template is the one used. ``aencode``/``adecode``/
    ``achat_prompt`` (the ``Engine`` protocol's) do not block the event loop; the blocking
    ``encode``/``decode``/``chat_prompt`` are for synchronous callers such as scripts.
    """

    def __init__(
        self,
        config: OpenAIEngineConfig,
        tokenizer_path: Path | None = None,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        sync_transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.config = config
        self.name = f"openai:{config.model}@{config.base_url}"
        self._api_url = config.base_url.rstrip("/")
        # /tokenize, /detokenize and /version live at the server root, beside /v1.
        self._root_url = self._api_url.removesuffix("/v1")
        self._api_key = os.environ.get(config.api_key_env) or None
        self._transport = transport
        self._sync_transport = sync_transport
        self._loop_client: _LoopClient | None = None
        self._sync_client: httpx.Client | None = None
        self._local_tokenizer: Any = _load_tokenizer(tokenizer_path) if tokenizer_path else None
        self.vocab_size: int | None = config.vocab_size
        if self.vocab_size is None and self._local_tokenizer is not None:
            self.vocab_size = len(self._local_tokenizer)
        self._server_version: str | None = None
        # Strategies encode the same cues (" Wait", "Final Answer:") over and over.
        self._token_cache: dict[str, tuple[int, ...]] = {}

    # -- generation ---------------------------------------------------------------------------

    async def generate(self, prompt_ids: Sequence[int], spec: SamplingSpec) -> Generation:
        """Generate ``spec.n`` completions of ``prompt_ids``; see ``Engine.generate``."""
        payload = completions_payload(self.config.model, prompt_ids, spec)
        state = self._client()
        async with state.slots:
            started = time.perf_counter()
            body = await self._post(state.client, f"{self._api_url}/completions", payload)
            latency = time.perf_counter() - started
        try:
            choices = sorted(body["choices"], key=lambda choice: choice["index"])
            completions = tuple(self._completion(choice, spec) for choice in choices)
            prompt_tokens = int(body.get("usage", {}).get("prompt_tokens", len(prompt_ids)))
        except (KeyError, TypeError, ValueError) as error:
            raise EngineRequestError(
                f"{self.name}: malformed completion response ({error})"
            ) from error
        if len(completions) != spec.n:
            raise EngineRequestError(
                f"{self.name}: asked for {spec.n} choices, got {len(completions)}"
            )
        return Generation(completions=completions, prompt_tokens=prompt_tokens, latency_s=latency)

    async def generate_until(
        self, prompt_ids: Sequence[int], spec: SamplingSpec, should_stop: EarlyStop
    ) -> Generation:
        """One completion, streamed (``stream=True``); the stream is closed as soon as
        ``should_stop`` fires, which makes vLLM's server abort the request (see
        ``StreamingEngine``). Tokens received before the close are all kept."""
        payload = completions_payload(self.config.model, prompt_ids, spec) | {
            "stream": True,
            "stream_options": {"include_usage": True},
        }
        state = self._client()
        async with state.slots:
            started = time.perf_counter()
            try:
                streamed = await stream_completion(
                    state.client, f"{self._api_url}/completions", payload, spec, should_stop
                )
            except httpx.HTTPError as error:
                raise self._transport_error(error) from error
            except StreamError as error:
                if error.response is not None:
                    self._json(error.response)  # raises the status's error
                raise EngineRequestError(f"{self.name}: {error}") from error
            latency = time.perf_counter() - started
        completion = streamed.completion(self.vocab_size if spec.top_logprobs else None)
        prompt_tokens = streamed.prompt_tokens or len(prompt_ids)
        return Generation(completions=(completion,), prompt_tokens=prompt_tokens, latency_s=latency)

    def _completion(self, choice: dict[str, Any], spec: SamplingSpec) -> Completion:
        logprob_block = choice.get("logprobs") or {}
        token_ids = choice_token_ids(choice)
        if token_ids is None:
            raise EngineRequestError(
                f"{self.name}: the server returned no generated token ids "
                "(it needs vLLM's return_token_ids, vLLM >= 0.10.2)"
            )
        finish_reason = choice.get("finish_reason")
        if finish_reason == "error":
            raise EngineRequestError(f"{self.name}: the server failed the request internally")
        token_logprobs: tuple[float, ...] = ()
        cumulative: float | None = None
        if spec.logprobs and logprob_block.get("token_logprobs") is not None:
            token_logprobs = tuple(float(value) for value in logprob_block["token_logprobs"])
            cumulative = sum(token_logprobs)
        top = top_logprobs(logprob_block, spec.top_logprobs, len(token_ids))
        return Completion(
            text=str(choice.get("text") or ""),
            token_ids=tuple(int(token) for token in token_ids),
            finish_reason=FINISH_REASONS.get(str(finish_reason), "abort"),
            stop_reason=choice.get("stop_reason"),
            cumulative_logprob=cumulative,
            token_logprobs=token_logprobs,
            top_logprobs=top,
            vocab_size=self.vocab_size if top else None,
        )

    # -- tokenizer ----------------------------------------------------------------------------

    def encode(self, text: str) -> list[int]:
        """Token ids of ``text`` with no special tokens added."""
        if self._local_tokenizer is not None:
            return [int(t) for t in self._local_tokenizer.encode(text, add_special_tokens=False)]
        if text not in self._token_cache:
            body = self._call_sync("/tokenize", self._tokenize_payload(text))
            self._remember(text, body)
        return list(self._token_cache[text])

    async def aencode(self, text: str) -> list[int]:
        """``encode`` without blocking the event loop."""
        if self._local_tokenizer is not None or text in self._token_cache:
            return self.encode(text)
        self._remember(text, await self._call("/tokenize", self._tokenize_payload(text)))
        return list(self._token_cache[text])

    def decode(self, token_ids: Sequence[int]) -> str:
        """Text of ``token_ids``."""
        if self._local_tokenizer is not None:
            return self._decode_local(token_ids)
        return str(self._call_sync("/detokenize", self._detokenize_payload(token_ids))["prompt"])

    async def adecode(self, token_ids: Sequence[int]) -> str:
        """``decode`` without blocking the event loop."""
        if self._local_tokenizer is not None:
            return self._decode_local(token_ids)
        body = await self._call("/detokenize", self._detokenize_payload(token_ids))
        return str(body["prompt"])

    def chat_prompt(self, messages: Sequence[dict[str, str]]) -> list[int]:
        """Token ids of a chat ending in an open assistant turn (the server's chat template)."""
        body = self._call_sync("/tokenize", self._chat_payload(messages))
        return [int(token) for token in body["tokens"]]

    async def achat_prompt(self, messages: Sequence[dict[str, str]]) -> list[int]:
        """``chat_prompt`` without blocking the event loop."""
        body = await self._call("/tokenize", self._chat_payload(messages))
        return [int(token) for token in body["tokens"]]

    def _decode_local(self, token_ids: Sequence[int]) -> str:
        ids = [int(token) for token in token_ids]
        return str(self._local_tokenizer.decode(ids, skip_special_tokens=True))

    def _tokenize_payload(self, text: str) -> dict[str, Any]:
        return {"model": self.config.model, "prompt": text, "add_special_tokens": False}

    def _detokenize_payload(self, token_ids: Sequence[int]) -> dict[str, Any]:
        return {"model": self.config.model, "tokens": [int(token) for token in token_ids]}

    def _chat_payload(self, messages: Sequence[dict[str, str]]) -> dict[str, Any]:
        return {
            "model": self.config.model,
            "messages": [dict(message) for message in messages],
            "add_generation_prompt": True,
        }

    def _remember(self, text: str, body: Any) -> None:
        if len(self._token_cache) >= _TOKEN_CACHE_SIZE:
            # Oldest first (dicts keep insertion order): the cues strategies repeat come back.
            del self._token_cache[next(iter(self._token_cache))]
        self._token_cache[text] = tuple(int(token) for token in body["tokens"])

    # -- reporting and lifetime ---------------------------------------------------------------

    def versions(self) -> dict[str, str]:
        """Endpoint, served model and the server's vLLM version (when it answers ``/version``)."""
        if self._server_version is None:
            try:
                response = self._sync().get(f"{self._root_url}/version")
                response.raise_for_status()
                self._server_version = str(response.json().get("version", "unknown"))
            except (httpx.HTTPError, ValueError):
                self._server_version = "unknown"
        return {
            "engine": "openai",
            "base_url": self.config.base_url,
            "model": self.config.model,
            "server_vllm": self._server_version,
        }

    async def close(self) -> None:
        """Close the HTTP clients."""
        if self._loop_client is not None:
            await self._loop_client.client.aclose()
            self._loop_client = None
        if self._sync_client is not None:
            self._sync_client.close()
            self._sync_client = None

    # -- HTTP ---------------------------------------------------------------------------------

    def _headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self._api_key}"} if self._api_key else {}

    def _client(self) -> _LoopClient:
        """The async client for the running loop (a client cannot move between loops)."""
        loop = asyncio.get_running_loop()
        if self._loop_client is None or self._loop_client.loop is not loop:
            limit = self.config.max_concurrency
            # The semaphore caps generations at ``limit``; the spare connections serve tokenizer
            # calls while every generation slot is busy.
            connections = limit + _TOKENIZER_CONNECTIONS
            client = httpx.AsyncClient(
                headers=self._headers(),
                timeout=self.config.timeout_s,
                limits=httpx.Limits(
                    max_connections=connections, max_keepalive_connections=connections
                ),
                transport=self._transport,
            )
            self._loop_client = _LoopClient(loop, client, asyncio.Semaphore(limit))
        return self._loop_client

    def _sync(self) -> httpx.Client:
        if self._sync_client is None:
            self._sync_client = httpx.Client(
                headers=self._headers(),
                timeout=min(self.config.timeout_s, 60.0),
                transport=self._sync_transport,
            )
        return self._sync_client

    async def _post(self, client: httpx.AsyncClient, url: str, payload: dict[str, Any]) -> Any:
        try:
            response = await client.post(url, json=payload)
        except httpx.HTTPError as error:
            raise self._transport_error(error) from error
        return self._json(response)

    async def _call(self, path: str, payload: dict[str, Any]) -> Any:
        """POST to a root endpoint (``/tokenize``…), retried with the "engine" policy."""
        client = self._client().client
        async for attempt in async_retrying("engine", (EngineRequestError,)):
            with attempt:
                return await self._post(client, f"{self._root_url}{path}", payload)
        raise AssertionError("unreachable: the retry re-raises its last error")

    def _call_sync(self, path: str, payload: dict[str, Any]) -> Any:
        """``_call`` for synchronous callers (it blocks, waits between tries included)."""
        return retrying("engine", (EngineRequestError,))(self._post_sync, path, payload)

    def _post_sync(self, path: str, payload: dict[str, Any]) -> Any:
        try:
            response = self._sync().post(f"{self._root_url}{path}", json=payload)
        except httpx.HTTPError as error:
            raise self._transport_error(error) from error
        return self._json(response)

    def _transport_error(self, error: httpx.HTTPError) -> EngineRequestError:
        """No connection at all is a sign of a dead server; a broken one is a failed request."""
        unreachable = isinstance(error, httpx.ConnectError | httpx.ConnectTimeout)
        kind = EngineUnreachableError if unreachable else EngineRequestError
        return kind(self._transport_message(error))

    def _json(self, response: httpx.Response) -> Any:
        if response.status_code >= 400:
            message = (
                f"{self.name}: HTTP {response.status_code} from {response.request.url.path}: "
                f"{self._redact(_server_message(response))}"
            )
            # 429 and 5xx are transient; any other 4xx would fail the same way again.
            if is_retryable_status(response.status_code):
                raise EngineRequestError(message)
            raise EngineRejectedError(message)
        try:
            return response.json()
        except ValueError as error:
            raise EngineRequestError(f"{self.name}: response is not JSON") from error

    def _transport_message(self, error: httpx.HTTPError) -> str:
        return f"{self.name}: {type(error).__name__}: {self._redact(str(error)) or 'no detail'}"

    def _redact(self, message: str) -> str:
        """``message`` without the API key, should a server or proxy ever echo it."""
        return message.replace(self._api_key, "***") if self._api_key else message


def _server_message(response: httpx.Response) -> str:
    """The error text of an OpenAI-style (``{"error": {"message"}}``) or other error body."""
    try:
        body = response.json()
    except ValueError:
        return response.text[:_MAX_MESSAGE_CHARS] or response.reason_phrase
    if isinstance(body, dict):
        error = body.get("error")
        if isinstance(error, dict) and error.get("message"):
            return str(error["message"])[:_MAX_MESSAGE_CHARS]
        for key in ("message", "detail", "error"):
            if body.get(key):
                return str(body[key])[:_MAX_MESSAGE_CHARS]
    return str(body)[:_MAX_MESSAGE_CHARS]


def _load_tokenizer(folder: Path) -> Any:
    """The transformers tokenizer of ``folder``: the class-specific one the server also uses."""
    if not (Path(folder) / "tokenizer_config.json").is_file():
        raise ConfigError(f"no tokenizer (tokenizer_config.json) in {folder}")
    # model_prep owns the transformers import, which keeps this module import-light.
    from ttscale.model_prep import load_tokenizer

    return load_tokenizer(Path(folder))
