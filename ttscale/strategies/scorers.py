"""Scorers rate one completion in [0, 1] for best-of-N, weighted votes and OptScale.

- ``mean_logprob``: exp(mean token logprob), the geometric-mean token probability; needs only
  what every engine returns (works on CPU).
- ``self_certainty`` (Kang et al. 2025, arXiv 2502.18581): mean KL(uniform ‖ p_i) over
  positions, from the top-k logprobs the engine returns (``SamplingSpec.top_logprobs``), mapped
  to [0, 1] by 1 − exp(−KL).
- ``reward_model``: an outcome or process reward model behind ``vllm serve`` (pooling runner),
  called over HTTP with httpx.

A scorer that runs a model of its own costs tokens that the generating engine never sees: the
reward model reads the question and the completion (its prefill). ``score_and_cost`` returns
that cost with the score, and ``LiveSampler`` records it as a call of phase "score", so ledger
totals include it. Scorers that only read the completion (mean token probability, stored scores)
cost nothing.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import httpx

from ttscale.engines.base import Completion
from ttscale.errors import ConfigError, EngineRequestError
from ttscale.retry import async_retrying, is_retryable_status
from ttscale.strategies.config import (
    MeanLogprobScorerConfig,
    RewardModelScorerConfig,
    ScorerConfig,
    SelfCertaintyScorerConfig,
    StoredScorerConfig,
)


class Scorer(Protocol):
    """Rates one completion of ``question`` in [0, 1]; higher is better."""

    name: str

    async def score(self, question: str, completion: Completion) -> float: ...

    async def aclose(self) -> None: ...


@dataclass(frozen=True)
class ScoringCost:
    """What one score cost beyond the completion itself: a scoring model's prefill."""

    prompt_tokens: int
    """Tokens the scoring model read (question and completion, as its server counted them)."""
    latency_s: float


async def score_and_cost(
    scorer: Scorer, question: str, completion: Completion
) -> tuple[float, ScoringCost | None]:
    """``scorer``'s score of ``completion``, and its cost if the scorer runs a model (else None).

    A scorer with a cost has ``score_with_cost``; every other scorer reads only the completion.
    """
    costed = getattr(scorer, "score_with_cost", None)
    if costed is None:
        return await scorer.score(question, completion), None
    score, cost = await costed(question, completion)
    return float(score), cost


def mean_logprob_score(cumulative_logprob: float | None, tokens: int) -> float:
    """exp(cumulative_logprob / tokens), in [0, 1]; 0.0 for an empty completion."""
    if cumulative_logprob is None:
        raise ConfigError("mean_logprob scoring needs logprobs; the engine returned none")
    if tokens <= 0:
        return 0.0
    return math.exp(min(cumulative_logprob / tokens, 0.0))


def self_certainty(top_logprobs: Sequence[Sequence[float]], vocab_size: int) -> float:
    """Mean over positions of KL(U ‖ p_i) = −log V − (1/V)·Σ_j log p_ij (Kang et al. 2025).

    Each position gives its top-k logprobs. Approximation when k < V: the mass left outside the
    top k is spread evenly over the other V − k tokens (exact when k = V).
    """
    if not top_logprobs:
        return 0.0
    total = 0.0
    for position in top_logprobs:
        k = len(position)
        if not 0 < k <= vocab_size:
            raise ValueError(f"need 1..{vocab_size} logprobs per position, got {k}")
        sum_log = float(sum(position))
        if k < vocab_size:
            rest = max(1.0 - sum(math.exp(lp) for lp in position), 1e-12)
            sum_log += (vocab_size - k) * math.log(rest / (vocab_size - k))
        total += -math.log(vocab_size) - sum_log / vocab_size
    return total / len(top_logprobs)


class SelfCertaintyScorer:
    """Scores a completion by 1 − exp(−self-certainty): 0 for uniform guessing at every token,
    towards 1 as the model grows sure. Monotone in self-certainty, so rankings (best-of-N) are
    the paper's; the map only puts the score in [0, 1] as votes and OptScale need.

    ``top_logprobs`` tells the sampler how many logprobs per token to ask the engine for.
    """

    name = "self_certainty"

    def __init__(self, config: SelfCertaintyScorerConfig) -> None:
        self.config = config
        self.top_logprobs = config.top_logprobs

    async def score(self, question: str, completion: Completion) -> float:
        if completion.num_tokens == 0:
            return 0.0
        if not completion.top_logprobs or completion.vocab_size is None:
            raise ConfigError(
                "self_certainty scoring needs top-k logprobs and the vocabulary size; the engine "
                "returned none (for an OpenAI-compatible server, set its vocab_size)"
            )
        kl = self_certainty(completion.top_logprobs, completion.vocab_size)
        return 1.0 - math.exp(-max(kl, 0.0))

    async def aclose(self) -> None:
        return None


class MeanLogprobScorer:
    name = "mean_logprob"

    def __init__(self, config: MeanLogprobScorerConfig) -> None:
        self.config = config

    async def score(self, question: str, completion: Completion) -> float:
        return mean_logprob_score(completion.cumulative_logprob, completion.num_tokens)

    async def aclose(self) -> None:
        return None


def _aggregate(values: list[float], how: str) -> float:
    if not values:
        raise ConfigError("the reward model returned no score")
    if how == "last":
        return values[-1]
    if how == "min":
        return min(values)
    if how == "mean":
        return sum(values) / len(values)
    return math.prod(values)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _is_vector(value: Any) -> bool:
    return isinstance(value, list) and bool(value) and all(_is_number(v) for v in value)


class RewardModelScorer:
    """Calls ``vllm serve <reward model>``: POST /pooling or /classify, one request per score.

    /pooling answers ``{"data": [{"data": v}]}``. vLLM's v is one vector for the whole sequence
    (task ``classify``: class probabilities, or ``[score]`` for a one-label reward model), whose
    ``positive_index`` entry is the score; or one vector per token or step (task
    ``token_classify``, a PRM such as Qwen2.5-Math-PRM), each giving its ``positive_index`` entry,
    aggregated by ``step_aggregate``. A bare number is taken as the score. /classify answers
    ``{"data": [{"probs": [...]}]}``. 429, 5xx answers and transport errors are retried (the
    "scorer" policy of ``ttscale.retry``); other 4xx and malformed answers are configuration
    errors.
    """

    name = "reward_model"

    def __init__(
        self, config: RewardModelScorerConfig, transport: httpx.AsyncBaseTransport | None = None
    ) -> None:
        self.config = config
        self._transport = transport
        self._client: httpx.AsyncClient | None = None

    def _http(self) -> httpx.AsyncClient:
        if self._client is None:
            key = os.environ.get(self.config.api_key_env)
            headers = {"Authorization": f"Bearer {key}"} if key else {}
            self._client = httpx.AsyncClient(
                base_url=self.config.base_url.rstrip("/"),
                headers=headers,
                timeout=self.config.timeout_s,
                transport=self._transport,
            )
        return self._client

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    def request(self, question: str, text: str) -> tuple[str, dict[str, Any]]:
        """(path, JSON body) of the request that scores ``text`` as an answer to ``question``."""
        if self.config.endpoint == "classify":
            return "/classify", {"model": self.config.model, "input": f"{question}\n\n{text}"}
        messages = [
            {"role": "user", "content": question},
            {"role": "assistant", "content": text},
        ]
        return "/pooling", {"model": self.config.model, "messages": messages}

    def parse(self, body: Any) -> float:
        """The score in [0, 1] of one response body."""
        try:
            entry = body["data"][0]
            raw = entry["probs"] if self.config.endpoint == "classify" else entry["data"]
        except (KeyError, IndexError, TypeError) as exc:
            raise ConfigError(f"unexpected reward model response: {str(body)[:200]}") from exc
        values = self._values(raw)
        squash: Callable[[float], float] = (
            (lambda x: 1.0 / (1.0 + math.exp(-x))) if self.config.logits else (lambda x: x)
        )
        score = _aggregate([squash(v) for v in values], self.config.step_aggregate)
        return min(max(score, 0.0), 1.0)

    def _values(self, raw: Any) -> list[float]:
        """One value per step (a sequence-level output is one step)."""
        index = self.config.positive_index
        if isinstance(raw, int | float) and not isinstance(raw, bool):
            return [float(raw)]
        try:
            if isinstance(raw, list) and raw and all(_is_number(r) for r in raw):
                # One vector for the sequence: class probabilities, or [score] (vLLM's /classify
                # and /pooling with task "classify"); not one number per step.
                return [float(raw[index])]
            if isinstance(raw, list) and raw and all(_is_vector(r) for r in raw):
                # One vector per token or step (task "token_classify", a PRM).
                return [float(step[index]) for step in raw]
        except IndexError as exc:
            raise ConfigError(
                f"positive_index {index} is out of range for reward model output {str(raw)[:200]}"
            ) from exc
        raise ConfigError(f"unexpected reward model output: {str(raw)[:200]}")

    async def _post(self, path: str, payload: dict[str, Any]) -> Any:
        """POST ``payload`` to ``path``; the JSON answer, retried as the module docstring says."""
        async for attempt in async_retrying("scorer", (EngineRequestError,)):
            with attempt:
                try:
                    response = await self._http().post(path, json=payload)
                except httpx.TransportError as exc:
                    raise EngineRequestError(f"reward model unreachable: {exc}") from exc
                if is_retryable_status(response.status_code):
                    raise EngineRequestError(f"reward model answered {response.status_code}")
                if response.status_code >= 400:
                    raise ConfigError(
                        f"reward model rejected the request ({response.status_code}): "
                        f"{response.text[:200]}"
                    )
        return response.json()

    async def _prefill_tokens(self, body: Any, payload: dict[str, Any]) -> int:
        """Tokens the reward model read: the answer's ``usage``, else the server's /tokenize."""
        usage = body.get("usage") if isinstance(body, dict) else None
        if isinstance(usage, dict) and _is_number(usage.get("prompt_tokens")):
            return int(usage["prompt_tokens"])
        # A server that reports no usage still counts: /tokenize takes the same messages, and
        # a /classify input as its prompt.
        if "input" in payload:
            payload = {"model": payload["model"], "prompt": payload["input"]}
        counted = await self._post("/tokenize", payload)
        if not isinstance(counted, dict) or not _is_number(counted.get("count")):
            raise ConfigError(
                "the reward model reports no token usage and /tokenize gave no count: "
                f"{str(counted)[:200]}"
            )
        return int(counted["count"])

    async def score_with_cost(
        self, question: str, completion: Completion
    ) -> tuple[float, ScoringCost]:
        """The score, and what the reward model read to give it."""
        started = time.perf_counter()
        path, payload = self.request(question, completion.text)
        body = await self._post(path, payload)
        score = self.parse(body)
        tokens = await self._prefill_tokens(body, payload)
        return score, ScoringCost(tokens, time.perf_counter() - started)

    async def score(self, question: str, completion: Completion) -> float:
        """The score alone (one request; nothing counted)."""
        path, payload = self.request(question, completion.text)
        return self.parse(await self._post(path, payload))


class StoredScorer:
    """Scores that came with a pool. Replay serves them (``strategies.replay``); a live run has
    none, so scoring with this raises."""

    name = "stored"

    def __init__(self, config: StoredScorerConfig) -> None:
        self.config = config

    async def score(self, question: str, completion: Completion) -> float:
        raise ConfigError(
            "scorer 'stored' reads the scores stored with a pool: use it with `ttscale replay`"
        )

    async def aclose(self) -> None:
        return None


SCORERS: dict[str, Callable[[Any], Scorer]] = {
    "mean_logprob": MeanLogprobScorer,
    "reward_model": RewardModelScorer,
    "stored": StoredScorer,
    "self_certainty": SelfCertaintyScorer,
}


def make_scorer(config: ScorerConfig) -> Scorer:
    """The scorer a config names."""
    return SCORERS[config.kind](config)
