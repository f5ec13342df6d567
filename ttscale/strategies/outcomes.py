"""What a strategy returns and what each call leaves in the ledger: ``Outcome``, ``CallRecord``
and the reasons a strategy stops or goes on. Kept apart from ``base.StrategyContext`` (which
builds them) so that modules reading results need not import the engine-facing context.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any


class StopReason(StrEnum):
    """Why a strategy stopped on an item: ``Outcome.stop_reason``.

    Rows that leave the strategies (the runner's unit records, replay results) carry the plain
    string value, as the ledger stores it, so they print and serialise like any string.
    """

    BUDGET_REACHED = "budget_reached"
    """A fixed-N strategy drew its N samples; budget forcing hit its thinking cap."""
    MODEL_STOPPED = "model_stopped"
    """Budget forcing: the model ended its thinking before the cap."""
    CONVERGED = "converged"
    """Adaptive-Consistency: the stop probability reached the threshold."""
    WINDOW_AGREED = "window_agreed"
    """ESC: every answer of a window agreed."""
    N_STAR_REACHED = "n_star_reached"
    """OptScale: N* samples were drawn."""
    ANSWER_REPEATED = "answer_repeated"
    """Refinement: a revision repeated the previous answer."""
    PROBES_AGREED = "probes_agreed"
    """Probe-and-stop: k consecutive answer probes of the thinking gave one answer."""
    CONSENSUS = "consensus"
    """DeepConf: the leading answer's share of confidence-weighted votes reached the threshold."""
    VERIFIER_PASSED = "verifier_passed"
    """Verifier gate: a sample's score passed the calibrated threshold."""
    CONFIDENT = "confident"
    """Confidence stop: a probe's answer confidence reached the ramping threshold."""
    DEGENERATE = "degenerate"
    """Confidence stop: the degeneration score says more thinking is unlikely to help."""
    CAP = "cap"
    """An adaptive rule had not stopped when the budget ran out."""
    ERROR = "error"
    """The strategy raised; the runner records the error (never an answer, right or wrong)."""


class ContinueReason(StrEnum):
    """Why a stopping rule said "keep sampling" (``StopDecision.reason`` when it does not stop)."""

    NOT_CONVERGED = "not_converged"
    NO_ANSWERS = "no_answers"
    WINDOW_DISAGREED = "window_disagreed"
    BELOW_N_STAR = "below_n_star"
    PROBES_DISAGREED = "probes_disagreed"
    NOT_CONFIDENT = "not_confident"


@dataclass
class CallRecord:
    """One generated sequence, as the ledger stores it."""

    sample_index: int
    call_index: int
    phase: str
    prompt_tokens: int
    completion_tokens: int
    thinking_tokens: int
    answer_tokens: int
    finish_reason: str
    stop_reason: str | None
    latency_s: float
    used: bool
    seed: int | None
    cumulative_logprob: float | None
    score: float | None
    extracted_answer: str | None
    completion_text: str
    # Added with the sample cache; older parts lack them (read as the defaults).
    cached: bool = False
    """Served from the run's sample cache: generated once for another call (or as a prefix of
    a longer one); its tokens still count as the unit's (``completion_tokens``)."""
    generated_tokens: int | None = None
    """Tokens the engine generated that this call accounts for: each generation is counted on
    one call only. None in older parts, where it equals ``completion_tokens``."""
    cache_key: str | None = None
    """Digest of the request (``sample_cache.request_digest``), for a resumed shard's cache."""
    token_ids: list[int] | None = None
    """The generated ids, kept (with the cache on) so a resumed shard can serve them again."""
    # Added with top-k logprobs (DeepConf); None when the call asked for none.
    mean_confidence: float | None = None
    """Mean token confidence (``strategies.confidence``) of the completion."""
    lowest_group_confidence: float | None = None
    """Lowest mean confidence over a sliding window (``StrategyContext.confidence_window``)."""
    tail_confidence: float | None = None
    """Mean confidence of the last ``StrategyContext.confidence_tail`` tokens."""


@dataclass(frozen=True)
class Outcome:
    """What a strategy decided for one item, and why it stopped."""

    final_answer: str | None
    stop_reason: StopReason
    samples_used: int
    detail: dict[str, Any] = field(default_factory=dict)
    answered_language: str | None = None
