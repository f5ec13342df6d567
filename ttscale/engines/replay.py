"""An engine that serves stored completions: replay runs every strategy's own code on a pool.

No model and no GPU: a request is answered with the stored completion its seed names. The caller
(``strategies.replay``) maps the seed of each draw to a stored sample, so a strategy drawing
sample i through ``StrategyContext.generate`` gets the stored sample for draw i, as a live run
on the same seeds gets the same draw. Only independent samples can be served this way: a request
that continues or forces text (stop strings) or whose seed names no stored sample is refused.

A pool stores texts and token counts, not token ids and not prompts: completions carry
placeholder ids of the stored length, so their token counts are exact, while ``aencode`` and
``achat_prompt`` return no ids and ``adecode`` returns no text.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from ttscale.engines.base import Completion, FinishReason, Generation, SamplingSpec

_PLACEHOLDER_ID = 0


@dataclass(frozen=True)
class StoredCompletion:
    """One stored sample as the engine serves it, with the score the run stored, if any."""

    text: str
    completion_tokens: int
    cumulative_logprob: float | None
    score: float | None = None
    finish_reason: FinishReason = "stop"
    confidence: Mapping[str, float] | None = None
    """Token-confidence statistics the run stored (``mean_confidence``,
    ``lowest_group_confidence``, ``tail_confidence``), if any: a pool keeps no logprobs."""


class PoolExhaustedError(ValueError):
    """A request for a sample the pool does not hold (more samples than it stores)."""


class ReplayEngine:
    """Serves ``samples`` (stored completions by request seed), one request one completion."""

    def __init__(self, samples: Mapping[int, StoredCompletion], name: str = "replay") -> None:
        self.name = name
        self.samples = dict(samples)
        self.requests = 0
        self._scores: dict[Completion, float | None] = {}
        self._confidence: dict[Completion, Mapping[str, float] | None] = {}

    async def generate(self, prompt_ids: Sequence[int], spec: SamplingSpec) -> Generation:
        """The stored completion whose seed is ``spec.seed``.

        Raises ``ValueError`` for a request that is not one independent sample, and
        ``PoolExhaustedError`` for a seed with no stored sample.
        """
        if spec.n != 1 or spec.stop or spec.stop_token_ids:
            raise ValueError(
                "replay serves stored independent samples (one completion, no stop strings); "
                "this request continues or forces text, which a pool cannot answer"
            )
        stored = self.samples.get(spec.seed) if spec.seed is not None else None
        if stored is None:
            raise PoolExhaustedError(
                f"{self.name}: no stored sample for this request (seed {spec.seed}): the "
                f"strategy asked for more than the {len(self.samples)} samples the pool holds"
            )
        self.requests += 1
        completion = Completion(
            text=stored.text,
            token_ids=(_PLACEHOLDER_ID,) * stored.completion_tokens,
            finish_reason=stored.finish_reason,
            cumulative_logprob=stored.cumulative_logprob,
        )
        self._scores[completion] = stored.score
        self._confidence[completion] = stored.confidence
        return Generation(completions=(completion,), prompt_tokens=len(prompt_ids), latency_s=0.0)

    def stored_score(self, completion: Completion) -> float | None:
        """The score stored with a completion this engine served (None if none was stored).

        Keyed by value: two served completions that are equal have the same text, so any
        scorer gives them the same score.
        """
        return self._scores.get(completion)

    def stored_confidence(self, completion: Completion) -> Mapping[str, float] | None:
        """The confidence statistics stored with a completion this engine served, if any
        (keyed by value, as ``stored_score``)."""
        return self._confidence.get(completion)

    async def aencode(self, text: str) -> list[int]:
        """No ids: stored samples are served whatever the prompt."""
        return []

    async def adecode(self, token_ids: Sequence[int]) -> str:
        """No text: served ids are placeholders."""
        return ""

    async def achat_prompt(self, messages: Sequence[dict[str, str]]) -> list[int]:
        """No ids: stored samples are served whatever the prompt."""
        return []

    def versions(self) -> dict[str, str]:
        return {"engine": "replay", "samples": str(len(self.samples))}

    async def close(self) -> None:
        return None
