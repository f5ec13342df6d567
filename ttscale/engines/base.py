"""The engine protocol: one async ``generate`` surface for every backend."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal, Protocol, runtime_checkable

FinishReason = Literal["stop", "length", "abort"]


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
    )
