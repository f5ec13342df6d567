"""Confidence-dynamics stopping of one reasoning trace, after CoDE-Stop (Hosseini et al. 2026,
arXiv 2604.04930): pure functions of the answer probes seen so far, returning ``StopDecision``s.

Two signals over the probes' answer confidences c_1 … c_n (mean token probability of each probe):

- a *ramping threshold*: probe i stops thinking when its answer is parsed and c_i ≥ τ_i, where
  τ_i = start + (end − start)·min(1, (i − 1)/ramp_probes) rises with the probe number, because
  late confidence is less telling (incorrect traces grow more confident as they go on);
- a *degeneration score*: D_n = Σ w_i·(1 − c_i) / Σ w_i with w_i = 1/ln(1 + i), a weighted mean
  of unconfidence that weighs early probes more (their dynamics separate correct from incorrect
  traces best); D_n ≥ δ after at least ``degeneration_min_probes`` probes stops a trace that is
  unlikely to be rescued by more thinking.

From the paper: the two signals, the ramp direction, and the logarithmic weighting of early
probes. Ours: the linear ramp's shape and every constant (``ConfidenceRule``'s defaults), which
the paper's text available to us does not fix; tune them per model.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from ttscale.strategies.base import ContinueReason, StopReason
from ttscale.strategies.stopping import StopDecision

RULE = "confidence_stop"


@dataclass(frozen=True)
class ConfidenceRule:
    """The constants of the confidence-dynamics rule (all ours; see the module docstring)."""

    threshold_start: float = 0.85
    threshold_end: float = 0.97
    ramp_probes: int = 16
    degeneration_threshold: float = 0.6
    degeneration_min_probes: int = 4

    def __post_init__(self) -> None:
        if not 0.0 < self.threshold_start <= self.threshold_end <= 1.0:
            raise ValueError(
                f"need 0 < threshold_start <= threshold_end <= 1, got "
                f"{self.threshold_start}, {self.threshold_end}"
            )
        if self.ramp_probes < 1 or self.degeneration_min_probes < 1:
            raise ValueError("ramp_probes and degeneration_min_probes must be >= 1")


def ramping_threshold(probe_number: int, rule: ConfidenceRule) -> float:
    """τ_i for probe ``probe_number`` (1-based): linear from start to end over ramp_probes."""
    if probe_number < 1:
        raise ValueError(f"probe numbers start at 1, got {probe_number}")
    progress = min(1.0, (probe_number - 1) / rule.ramp_probes)
    return rule.threshold_start + (rule.threshold_end - rule.threshold_start) * progress


def degeneration_score(confidences: Sequence[float]) -> float:
    """D_n = Σ w_i·(1 − c_i) / Σ w_i, w_i = 1/ln(1 + i): early probes weigh more."""
    if not confidences:
        raise ValueError("the degeneration score needs at least one confidence")
    weights = [1.0 / math.log(1 + i) for i in range(1, len(confidences) + 1)]
    weighted = sum(w * (1.0 - c) for w, c in zip(weights, confidences, strict=True))
    return weighted / sum(weights)


def confidence_stop_decision(
    keys: Sequence[str | None],
    confidences: Sequence[float | None],
    rule: ConfidenceRule,
    at_cap: bool = False,
) -> StopDecision:
    """Stop when the last probe is confident enough ("confident"), when the trace looks
    degenerate ("degenerate"), or at the cap ("cap"); the confident test goes first.

    ``keys`` are the probes' graded-equal answers (None: not parsed, never confident) and
    ``confidences`` their confidences; a missing one (an engine without logprobs) is an error.
    ``statistic`` is the last confidence (or D_n for a degenerate stop), ``threshold`` the
    bound it was held against.
    """
    if len(keys) != len(confidences):
        raise ValueError(f"{len(keys)} probe answers but {len(confidences)} confidences")
    seen = len(keys)
    if seen == 0:
        reason = StopReason.CAP if at_cap else ContinueReason.NOT_CONFIDENT
        return StopDecision(at_cap, reason, None, RULE, None, 0)
    if any(c is None for c in confidences):
        raise ValueError(
            "confidence_stop needs the probes' token logprobs; the engine returned none"
        )
    values = [float(c) for c in confidences if c is not None]
    threshold = ramping_threshold(seen, rule)
    if keys[-1] is not None and values[-1] >= threshold:
        return StopDecision(True, StopReason.CONFIDENT, values[-1], RULE, threshold, seen)
    if seen >= rule.degeneration_min_probes:
        score = degeneration_score(values)
        if score >= rule.degeneration_threshold:
            return StopDecision(
                True, StopReason.DEGENERATE, score, RULE, rule.degeneration_threshold, seen
            )
    if at_cap:
        return StopDecision(True, StopReason.CAP, values[-1], RULE, threshold, seen)
    return StopDecision(False, ContinueReason.NOT_CONFIDENT, values[-1], RULE, threshold, seen)
