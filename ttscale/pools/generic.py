"""``generic``: ttscale's own documented pool line.

``{"id", "question", "answer", "dataset"?, "language"?, "samples": [{"text", "completion_tokens"?,
"score"?, "confidence"?}]}``: one line per problem; answers are extracted from each text under the
dataset's rules, as a live run extracts them.
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


def parse(row: dict[str, Any]) -> ImportedItem:
    samples = field_list(row, "samples")
    if not samples:
        raise LineError("samples", "samples must be a non-empty list")
    parsed = []
    for i, sample in enumerate(samples):
        where = f"samples[{i}]"
        if not isinstance(sample, dict):
            raise LineError(where, f"{where} must be an object with a text")
        parsed.append(
            ImportedSample(
                text=entry_text(sample.get("text"), f"{where}.text"),
                completion_tokens=entry_tokens(
                    sample.get("completion_tokens"), f"{where}.completion_tokens"
                ),
                score=entry_number(sample.get("score"), f"{where}.score"),
                confidence=entry_number(sample.get("confidence"), f"{where}.confidence"),
            )
        )
    return ImportedItem(
        item_id=str(field_text(row, "id")),
        question=str(field_text(row, "question")),
        gold=str(field_text(row, "answer")).strip(),
        samples=tuple(parsed),
        dataset=field_text(row, "dataset", required=False),
        language=field_text(row, "language", required=False),
    )


FORMAT = PoolFormat(
    "generic", parse, answers_stored=False, default_dataset="generic", id_field="id"
)
