"""The engine protocol: one async ``generate`` surface for every backend."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Literal, Protocol, runtime_checkable

FinishReason = Literal["stop", "length", "abort"]

TopLogprobs = tuple[float, ...]
"""One generated position: the logprobs of its k most likely tokens, most likely first."""

EarlyStop = Callable[[TopLogprobs], bool]
"""Called with each generated position's top-k logprobs, in order; True stops the request there.

Stateful (a sliding window, say): one instance watches one request.
"""


@dataclass(frozen=True, slots=True)
class SamplingSpec:
    """What one generation request asks for. ``n`` completions share the prompt."""

    max_tokens: int
    temperature: float = 0.0
    top_p: float = 1.0
    n: int = 1
    stop: tuple[str, ...] = ()
    stop_token_ids: tuple[int, ...] = ()
    seed: int | None = None
    logprobs: bool = True
    top_logprobs: int = 0
    """Also return, per generated token, the logprobs of the k most likely tokens (0: none)."""


@dataclass(frozen=True, slots=True)
class Completion:
    """One generated sequence.

    ``token_ids`` are exactly the generated tokens (stop strings included, so that
    ``prompt_ids + token_ids`` is an exact prefix for continuation); ``text`` decodes them.
    """

    text: str
    token_ids: tuple[int, ...]
    finish_reason: FinishReason
    stop_reason: str | int | None = None
    cumulative_logprob: float | None = None
    token_logprobs: tuple[float, ...] = field(default=(), repr=False)
    top_logprobs: tuple[TopLogprobs, ...] = field(default=(), repr=False)
    """Per generated token, its top-k logprobs (``SamplingSpec.top_logprobs``); () if not asked."""
    vocab_size: int | None = None
    """The model's vocabulary size, given with top-k logprobs (self-certainty needs it)."""
    early_stop_at: int | None = None
    """Tokens seen when an ``EarlyStop`` fired (``generate_until``); None if it never did. A
    streaming engine stops there (``num_tokens`` may exceed it by the tokens already in flight);
    an engine that cannot stream generated the whole completion, and all of it counts."""

    @property
    def num_tokens(self) -> int:
        return len(self.token_ids)


@dataclass(frozen=True, slots=True)
class Generation:
    """The answer to one request: its completions, the prompt length and wall time."""

    completions: tuple[Completion, ...]
    prompt_tokens: int
    latency_s: float


@runtime_checkable
class Engine(Protocol):
    """What every backend implements. Prompts are token ids so continuation is exact."""

    name: str
    """Identifies backend and model in reports, e.g. 'vllm:/models/smollm2'."""

    async def generate(self, prompt_ids: Sequence[int], spec: SamplingSpec) -> Generation:
        """Generate ``spec.n`` completions of ``prompt_ids``.

        Raises ``EngineRequestError`` (recoverable) or ``EngineDeadError`` (fatal).
        """
        ...

    async def aencode(self, text: str) -> list[int]:
        """Token ids of ``text`` with no special tokens added."""
        ...

    async def adecode(self, token_ids: Sequence[int]) -> str:
        """Text of ``token_ids``."""
        ...

    async def achat_prompt(self, messages: Sequence[dict[str, str]]) -> list[int]:
        """Token ids of a chat ending in an open assistant turn (the model's chat template)."""
        ...

    def versions(self) -> dict[str, str]:
        """Versions and settings worth stating in a report (engine, model, dtype...)."""
        ...

    async def close(self) -> None:
        """Release the engine's resources."""
        ...


class LocalTokenizer(ABC):
    """The ``Engine`` protocol's tokenizer coroutines over an engine's in-process tokenizer.

    A local tokenizer answers in microseconds, so the coroutines call it directly on the event
    loop; a thread would buy nothing, and Hugging Face fast tokenizers used from two threads
    at once fail with "Already borrowed".
    """

    @abstractmethod
    def encode(self, text: str) -> list[int]:
        """Token ids of ``text`` with no special tokens added."""

    @abstractmethod
    def decode(self, token_ids: Sequence[int]) -> str:
        """Text of ``token_ids``."""

    @abstractmethod
    def chat_prompt(self, messages: Sequence[dict[str, str]]) -> list[int]:
        """Token ids of a chat ending in an open assistant turn."""

    async def aencode(self, text: str) -> list[int]:
        """``encode``, as the ``Engine`` protocol asks for it."""
        return self.encode(text)

    async def adecode(self, token_ids: Sequence[int]) -> str:
        """``decode``, as the ``Engine`` protocol asks for it."""
        return self.decode(token_ids)

    async def achat_prompt(self, messages: Sequence[dict[str, str]]) -> list[int]:
        """``chat_prompt``, as the ``Engine`` protocol asks for it."""
        return self.chat_prompt(messages)


def capped_completion(
    completion: Completion,
    max_tokens: int,
    text: str,
    cumulative_logprob: float | None,
    stop: Sequence[str],
) -> Completion | None:
    """The generic part of ``prefix_completion``: what a request capped at ``max_tokens`` would
    have returned, given a completion of the same request with a larger cap; None if unsure.

    A completion that ended on its own before the cap is returned whole. One that ran past the
    cap is cut to its first ``max_tokens`` tokens (``text`` and ``cumulative_logprob`` are the
    engine's for that cut). One that ended exactly at the cap, or by abort or the context
    length, is ambiguous (stop and length race at the last token): None, so the caller generates.
    """
    n = completion.num_tokens
    if n < max_tokens:
        return completion if completion.finish_reason == "stop" else None
    if n == max_tokens or any(s in text for s in stop):
        return None
    return Completion(
        text=text,
        token_ids=completion.token_ids[:max_tokens],
        finish_reason="length",
        stop_reason=None,
        cumulative_logprob=cumulative_logprob,
        token_logprobs=completion.token_logprobs[:max_tokens],
        top_logprobs=completion.top_logprobs[:max_tokens],
        vocab_size=completion.vocab_size,
    )


@runtime_checkable
class StreamingEngine(Protocol):
    """An engine that can stop a request while it generates (vLLM, an OpenAI-compatible server)."""

    async def generate_until(
        self, prompt_ids: Sequence[int], spec: SamplingSpec, should_stop: EarlyStop
    ) -> Generation:
        """One completion of ``prompt_ids`` (``spec.n`` must be 1), streamed; ``should_stop``
        sees each token's top-k logprobs, and when it returns True the request is aborted: the
        completion holds the tokens generated so far, with finish reason "abort"."""
        ...


def first_early_stop(top_logprobs: Sequence[TopLogprobs], should_stop: EarlyStop) -> int | None:
    """Tokens seen when ``should_stop`` first returns True over ``top_logprobs``; None if never."""
    for position, values in enumerate(top_logprobs):
        if should_stop(values):
            return position + 1
    return None


async def generate_until(
    engine: Engine, prompt_ids: Sequence[int], spec: SamplingSpec, should_stop: EarlyStop
) -> Generation:
    """``engine.generate_until`` where the engine streams; elsewhere generate the whole
    completion, then run ``should_stop`` over it.

    The fallback cannot stop the engine early, so every token it generated is kept in the
    completion and counted; ``early_stop_at`` says where a streaming engine would have stopped.
    """
    if spec.n != 1 or spec.top_logprobs < 1:
        raise ValueError("generate_until draws one completion, with top_logprobs >= 1")
    if isinstance(engine, StreamingEngine):
        return await engine.generate_until(prompt_ids, spec, should_stop)
    generation = await engine.generate(prompt_ids, spec)
    (completion,) = generation.completions
    stopped = first_early_stop(completion.top_logprobs, should_stop)
    if stopped is None:
        return generation
    aborted = replace(completion, finish_reason="abort", stop_reason=None, early_stop_at=stopped)
    return replace(generation, completions=(aborted,))
