"""``/v1/completions`` of an OpenAI-compatible (vLLM) server: the request, and its choices
read whole or streamed.

A streamed request (``stream=True``) answers with server-sent events, one ``data: {chunk}`` line
per step and ``data: [DONE]`` at the end; each chunk's choice carries that step's text, token
ids and logprobs. Closing the response early makes vLLM's server abort the request.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx

from ttscale.engines.base import Completion, EarlyStop, FinishReason, SamplingSpec, TopLogprobs

FINISH_REASONS: dict[str, FinishReason] = {"stop": "stop", "length": "length", "abort": "abort"}
TOKEN_ID_PREFIX = "token_id:"


class StreamError(ValueError):
    """A streamed answer that is not a completion: an error status (``response``) or a
    malformed chunk."""

    def __init__(self, message: str, response: httpx.Response | None = None) -> None:
        super().__init__(message)
        self.response = response


def completions_payload(
    model: str, prompt_ids: Sequence[int], spec: SamplingSpec
) -> dict[str, Any]:
    """The ``/completions`` request body for ``spec``."""
    payload: dict[str, Any] = {
        "model": model,
        "prompt": [int(token) for token in prompt_ids],
        "max_tokens": spec.max_tokens,
        "temperature": spec.temperature,
        "top_p": spec.top_p,
        "n": spec.n,
        "stop": list(spec.stop),
        "stop_token_ids": list(spec.stop_token_ids),
        # Continuation appends the ids to the prompt, so the stop text must be in them.
        "include_stop_str_in_output": True,
        "skip_special_tokens": True,
        "return_token_ids": True,
    }
    if spec.seed is not None:
        payload["seed"] = spec.seed
    if spec.logprobs or spec.top_logprobs:
        # 0 = just the sampled token's logprob, k adds the k most likely tokens'; tokens as
        # "token_id:N" are a second source of the exact ids for servers that ignore
        # return_token_ids.
        payload["logprobs"] = spec.top_logprobs
        payload["return_tokens_as_token_ids"] = True
    return payload


def choice_token_ids(choice: dict[str, Any]) -> list[int] | None:
    """The generated ids of a choice: ``token_ids``, else its "token_id:N" logprob tokens."""
    token_ids = choice.get("token_ids")
    if token_ids is not None:
        return [int(token) for token in token_ids]
    tokens = (choice.get("logprobs") or {}).get("tokens")
    if tokens is None or not all(str(t).startswith(TOKEN_ID_PREFIX) for t in tokens):
        return None
    return [int(str(token).removeprefix(TOKEN_ID_PREFIX)) for token in tokens]


def top_logprobs(block: dict[str, Any], k: int, tokens: int) -> tuple[TopLogprobs, ...]:
    """The ``k`` largest logprobs per position of a completions ``logprobs`` block.

    The server lists the top k by token text, plus the sampled token when it ranks lower: the k
    largest values are the top k either way. ``ValueError`` (a malformed response) when the
    positions do not match the generated tokens.
    """
    if not k:
        return ()
    positions = block.get("top_logprobs")
    if positions is None or len(positions) != tokens:
        raise ValueError(f"asked for top {k} logprobs of {tokens} tokens, got {positions!r:.80}")
    return tuple(
        tuple(sorted((float(v) for v in position.values()), reverse=True)[:k])
        for position in positions
    )


@dataclass
class StreamedCompletion:
    """One completion put together from streamed chunks."""

    k: int
    text: list[str] = field(default_factory=list)
    token_ids: list[int] = field(default_factory=list)
    token_logprobs: list[float] = field(default_factory=list)
    top_logprobs: list[TopLogprobs] = field(default_factory=list)
    finish_reason: str | None = None
    stop_reason: str | int | None = None
    prompt_tokens: int | None = None
    stopped_at: int | None = None

    def add(self, choice: dict[str, Any], should_stop: EarlyStop) -> bool:
        """Take one chunk's choice; True once ``should_stop`` has fired."""
        if choice.get("finish_reason") == "error":
            raise StreamError("the server failed the request internally")
        ids = choice_token_ids(choice)
        if ids is None:
            raise StreamError("a streamed chunk carries no generated token ids")
        block = choice.get("logprobs") or {}
        top = top_logprobs(block, self.k, len(ids))
        self.text.append(str(choice.get("text") or ""))
        self.token_ids += ids
        self.token_logprobs += [float(v) for v in block.get("token_logprobs") or []]
        seen = len(self.top_logprobs)
        self.top_logprobs += top
        if choice.get("finish_reason") is not None:
            self.finish_reason = str(choice["finish_reason"])
            self.stop_reason = choice.get("stop_reason")
        for offset, values in enumerate(top):
            if should_stop(values):
                self.stopped_at = seen + offset + 1
                return True
        return False

    def completion(self, vocab_size: int | None) -> Completion:
        stopped = self.stopped_at is not None
        logprobs = len(self.token_logprobs) == len(self.token_ids)
        return Completion(
            text="".join(self.text),
            token_ids=tuple(self.token_ids),
            finish_reason="abort"
            if stopped
            else FINISH_REASONS.get(str(self.finish_reason), "abort"),
            stop_reason=None if stopped else self.stop_reason,
            cumulative_logprob=sum(self.token_logprobs) if logprobs else None,
            token_logprobs=tuple(self.token_logprobs) if logprobs else (),
            top_logprobs=tuple(self.top_logprobs),
            vocab_size=vocab_size,
            early_stop_at=self.stopped_at,
        )


async def stream_completion(
    client: httpx.AsyncClient,
    url: str,
    payload: dict[str, Any],
    spec: SamplingSpec,
    should_stop: EarlyStop,
) -> StreamedCompletion:
    """POST a streamed completions request and read it until it ends or ``should_stop`` fires;
    leaving the ``stream`` context closes the connection, which aborts the request."""
    streamed = StreamedCompletion(spec.top_logprobs)
    async with client.stream("POST", url, json=payload) as response:
        if response.status_code >= 400:
            await response.aread()
            raise StreamError(f"HTTP {response.status_code}", response)
        async for line in response.aiter_lines():
            data = line.removeprefix("data:").strip()
            if not line.startswith("data:") or not data:
                continue
            if data == "[DONE]":
                break
            try:
                chunk = json.loads(data)
                usage = chunk.get("usage")
                if usage:
                    streamed.prompt_tokens = int(usage["prompt_tokens"])
                choices = chunk.get("choices") or []
            except (ValueError, KeyError, TypeError, AttributeError) as error:
                raise StreamError(f"malformed streamed chunk ({error})") from error
            for choice in choices:
                try:
                    if streamed.add(choice, should_stop):
                        return streamed
                except (KeyError, TypeError, ValueError) as error:
                    if isinstance(error, StreamError):
                        raise
                    raise StreamError(f"malformed streamed chunk ({error})") from error
    if streamed.finish_reason is None:
        raise StreamError("the stream ended before the completion did")
    return streamed
