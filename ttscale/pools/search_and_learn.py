"""``search-and-learn``: a row of Hugging Face search-and-learn's output dataset (as JSONL).

``problem``, ``answer``, ``completions`` (the n completions), ``scores`` (per completion the PRM's
step scores) and ``completion_tokens`` (per completion; ``-1``, or one ``-1`` for the row, where
the search did not count them, as DVTS writes). A completion's stored score is its last step's
score, search-and-learn's default ``agg_strategy="last"``. Answers are extracted from each
completion under the dataset's rules (the row stores none per completion). The item id is
``unique_id`` when the row has one (MATH-500 does), else the line number.
"""

from __future__ import annotations

from typing import Any

from ttscale.pools.model import (
    ImportedItem,
    ImportedSample,
    LineError,
    PoolFormat,
    entry_number,
    entry_text,
    entry_tokens,
    field_list,
    field_text,
)

SCORE_AGGREGATE = "last"


def _last_step(value: Any, where: str) -> float | None:
    if isinstance(value, list):
        if not value:
            return None
        return entry_number(value[-1], f"{where}[{len(value) - 1}]")
    return entry_number(value, where)


def parse(row: dict[str, Any]) -> ImportedItem:
    completions = field_list(row, "completions")
    if not completions:
        raise LineError("completions", "completions must be a non-empty list")
    n = len(completions)
    scores = field_list(row, "scores", n) or [None] * n
    tokens: list[Any] = [None] * n
    if isinstance(row.get("completion_tokens"), list):
        tokens = [None if t == -1 else t for t in field_list(row, "completion_tokens", n) or []]
    samples = tuple(
        ImportedSample(
            text=entry_text(text, f"completions[{i}]"),
            completion_tokens=entry_tokens(count, f"completion_tokens[{i}]"),
            score=_last_step(score, f"scores[{i}]"),
        )
        for i, (text, count, score) in enumerate(zip(completions, tokens, scores, strict=True))
    )
    item_id = field_text(row, "unique_id", required=False)
    return ImportedItem(
        item_id=item_id or "",  # the writer names it by line when the row has no id
        question=str(field_text(row, "problem")),
        gold=str(field_text(row, "answer")).strip(),
        samples=samples,
    )


FORMAT = PoolFormat(
    "search-and-learn", parse, answers_stored=False, default_dataset="math", id_field="unique_id"
)
