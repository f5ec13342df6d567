"""What every pool format reads a line into, and the checks that name a bad line's field.

A format module turns one JSON object (one line of the pool) into an ``ImportedItem``, or raises
``LineError`` naming the field and the reason; ``read_lines`` turns the object's bytes into
(line number, object or ``BadRow``) as batch inputs are read, so bad lines are reported the same
way (object, line, field, reason) and the rest is imported.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from ttscale.inputs import _rows_jsonl
from ttscale.schemas import BadRow


@dataclass(frozen=True)
class ImportedSample:
    """One sample of a pool, as the other tool stored it."""

    text: str
    answer: str | None = None
    """The tool's own extracted answer (raw; "" when it found none); None when the pool stores
    none for this sample, which is then extracted under the dataset's rules."""
    completion_tokens: int | None = None
    """None when the pool does not say: counted with the import's tokenizer."""
    score: float | None = None
    """A scorer's value (a reward model's score), served by the ``stored`` scorer in replay."""
    verdict: bool | None = None
    """The tool's own grading of this sample, if it stores one (compared, never trusted blindly)."""
    confidence: float | None = None


@dataclass(frozen=True)
class ImportedItem:
    """One problem of a pool and its samples, in the pool's order."""

    item_id: str
    question: str
    gold: str
    samples: tuple[ImportedSample, ...]
    dataset: str | None = None
    language: str | None = None
    variant: str | None = None
    """A second view of the same samples (lm-eval writes one line per filter): the first variant
    of an id is imported; lines of its other variants are counted, not imported twice."""


class LineError(ValueError):
    """A line that cannot be imported: the field at fault and why."""

    def __init__(self, field: str | None, reason: str) -> None:
        super().__init__(reason)
        self.field = field
        self.reason = reason


@dataclass(frozen=True)
class PoolFormat:
    """One format: how a line becomes an item, and whether its answers are the tool's own."""

    name: str
    parse: Callable[[dict[str, Any]], ImportedItem]
    answers_stored: bool
    """Lines carry the tool's extracted answers; replay votes on them (else ttscale extracts)."""
    default_dataset: str
    """Grading rules when neither the line nor ``--dataset`` names a dataset."""
    id_field: str
    """The line's field that names the item (bad-line reports name it)."""
    own_majority_at_k: Callable[[Sequence[str], Sequence[bool], int], bool] | None = None
    """The tool's own maj@k verdict from its answers and verdicts, where the tool defines one."""


def read_lines(data: bytes, uri: str) -> Iterator[tuple[int, dict[str, Any] | BadRow]]:
    """JSONL lines as batch inputs are read: (line, object), or a ``BadRow`` for one unreadable."""
    return _rows_jsonl(data, uri)


# --- field checks: each raises LineError naming the field ---------------------------------------


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def field_text(row: dict[str, Any], name: str, *, required: bool = True) -> str | None:
    """A text field (numbers read as text, as in batch inputs); empty or missing is an error."""
    value = row.get(name)
    if value is None:
        if required:
            raise LineError(name, f"missing field {name!r}")
        return None
    if _is_number(value):
        return str(value)
    if not isinstance(value, str):
        raise LineError(name, f"{name} must be text, not {type(value).__name__}")
    if required and not value.strip():
        raise LineError(name, f"{name} is empty")
    return value


def field_list(row: dict[str, Any], name: str, length: int | None = None) -> list[Any] | None:
    """A list field; None when absent. ``length``: it must have that many entries."""
    value = row.get(name)
    if value is None:
        return None
    if not isinstance(value, list):
        raise LineError(name, f"{name} must be a list, not {type(value).__name__}")
    if length is not None and len(value) != length:
        raise LineError(name, f"{name} has {len(value)} entries for {length} samples")
    return value


def entry_text(value: Any, where: str) -> str:
    if not isinstance(value, str):
        raise LineError(where, f"{where} must be text, not {type(value).__name__}")
    return value


def entry_tokens(value: Any, where: str) -> int | None:
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise LineError(where, f"{where} must be a token count (an integer >= 0), not {value!r}")
    return value


def entry_number(value: Any, where: str) -> float | None:
    """A number, or a list holding one (a reward model's ``[3.5]``); None stays None."""
    if isinstance(value, list) and len(value) == 1:
        value = value[0]
    if value is None:
        return None
    if not _is_number(value) or value != value:  # NaN is not a score
        raise LineError(where, f"{where} must be a number, not {value!r}")
    return float(value)


def entry_verdict(value: Any, where: str) -> bool | None:
    if value is None:
        return None
    if isinstance(value, bool):
        return value
    if value in (0, 1):  # some tools write 0/1 (or 0.0/1.0) for false/true
        return bool(value)
    raise LineError(where, f"{where} must be true or false, not {value!r}")
