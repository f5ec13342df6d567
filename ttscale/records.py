"""Typed records of a unit's result: its key, its decision, its error and every call it made.

A unit is one item × strategy × budget. ``UnitResult`` is what one attempt of a unit produced;
shard part objects hold one per line, as ``UnitResult.to_json()``. That JSON shape is what the
ledger ingests (``ttscale/ledger/staging.py``, ``UNIT_FIELDS`` and ``CALL_FIELDS``): keys and
their order never change, and records written by older versions still read.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from typing import Any, NamedTuple

from ttscale.strategies.base import CallRecord, StopReason

__all__ = ["CallRecord", "UnitDecision", "UnitError", "UnitKey", "UnitResult"]

_CALL_FIELDS = tuple(f.name for f in fields(CallRecord))


class UnitKey(NamedTuple):
    """What identifies a unit within a run; a retry of a unit has the same key."""

    item_id: str
    strategy: str
    budget: int


@dataclass(frozen=True)
class UnitDecision:
    """What a strategy decided for one unit, and why it stopped (``StopReason`` as text)."""

    final_answer: str | None
    correct: bool
    stop_reason: str
    samples_used: int
    answered_language: str | None = None
    detail: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def failed(cls, samples_used: int) -> UnitDecision:
        """The decision of a unit whose strategy raised: no answer, stop reason ``error``."""
        return cls(None, False, str(StopReason.ERROR), samples_used)


@dataclass(frozen=True)
class UnitError:
    """Why a unit failed, and whether another attempt may succeed."""

    message: str
    """``ExceptionType: message``."""
    retryable: bool | None
    """``None`` in records written before this was recorded; those count as retryable."""


@dataclass(frozen=True)
class UnitResult:
    """One attempt of one unit: its decision, the error if it failed, and every call it made."""

    run_id: str
    item_id: str
    strategy: str
    budget: int
    decision: UnitDecision
    calls: list[CallRecord] = field(default_factory=list)
    error: UnitError | None = None

    @property
    def key(self) -> UnitKey:
        return UnitKey(self.item_id, self.strategy, self.budget)

    @property
    def settled(self) -> bool:
        """True when the unit needs no new attempt: it succeeded, or failed in a way no retry fixes."""
        return self.error is None or self.error.retryable is False

    @property
    def completion_tokens(self) -> int:
        """Attributed tokens: what this unit's calls produced, whether cached or not."""
        return sum(c.completion_tokens for c in self.calls)

    @property
    def generated_tokens(self) -> int:
        """Tokens the engine generated on this unit's account (see ``CallRecord.generated_tokens``)."""
        return sum(generated_tokens(c) for c in self.calls)

    def to_json(self) -> dict[str, Any]:
        """The record as a part object's line holds it (``json.dumps`` of this dict)."""
        d = self.decision
        record: dict[str, Any] = {
            "run_id": self.run_id,
            "item_id": self.item_id,
            "strategy": self.strategy,
            "budget": self.budget,
            "final_answer": d.final_answer,
            "correct": d.correct,
            "stop_reason": d.stop_reason,
            "samples_used": d.samples_used,
            "answered_language": d.answered_language,
            "detail": d.detail,
            "error": self.error.message if self.error else None,
        }
        # Successful records have never carried the key: the shape of part lines stays as it was.
        if self.error is not None:
            record["error_retryable"] = self.error.retryable
        record["calls"] = [asdict(c) for c in self.calls]
        return record

    def to_line(self) -> bytes:
        """One JSONL line of a part object."""
        return (json.dumps(self.to_json(), ensure_ascii=False) + "\n").encode()

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> UnitResult:
        """Read a part line's record; keys missing in older records take their empty value."""
        error = data.get("error")
        return cls(
            run_id=data["run_id"],
            item_id=data["item_id"],
            strategy=data["strategy"],
            budget=int(data["budget"]),
            decision=UnitDecision(
                final_answer=data.get("final_answer"),
                correct=bool(data.get("correct")),
                stop_reason=data.get("stop_reason") or str(StopReason.ERROR),
                samples_used=int(data.get("samples_used") or 0),
                answered_language=data.get("answered_language"),
                detail=data.get("detail") or {},
            ),
            calls=[_call_from_json(c) for c in data.get("calls") or []],
            error=None if error is None else UnitError(error, data.get("error_retryable")),
        )


def generated_tokens(call: CallRecord) -> int:
    """The tokens ``call`` accounts for as generated; older records generated all of theirs."""
    return call.completion_tokens if call.generated_tokens is None else call.generated_tokens


def _call_from_json(c: dict[str, Any]) -> CallRecord:
    # Call fields added over time are None in older parts (``cached`` is False there); unknown
    # keys are ignored, as the ledger's ingest ignores them.
    values: dict[str, Any] = {name: c.get(name) for name in _CALL_FIELDS}
    call = CallRecord(**values)
    call.cached = bool(call.cached)
    return call
