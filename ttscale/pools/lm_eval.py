"""``lm-eval``: lm-evaluation-harness's ``--log_samples`` JSONL of a ``generate_until`` task.

One line per document and filter: ``doc_id``, ``doc`` (the dataset row), ``target`` (the gold
answer), ``resps`` (per request the raw generations: ``[[r1, ..., rn]]`` with ``repeats: n``) and
``filtered_resps`` (what the task's filter extracted). The samples are the one request's
generations. Their answers are the filtered ones when ``filtered_resps`` holds one per
generation (``"[invalid]"``, the regex filters' no-match, is no answer); after a ``take_first`` or
``majority_vote`` filter it holds one value for all, and each generation's answer is extracted
under the dataset's rules instead. lm-eval writes the same generations once per filter: the
first filter seen is imported, the others' lines are counted and skipped.
"""

from __future__ import annotations

from typing import Any

from ttscale.pools.model import (
    ImportedItem,
    ImportedSample,
    LineError,
    PoolFormat,
    entry_text,
    field_list,
    field_text,
)

NO_MATCH = "[invalid]"
_QUESTION_KEYS = ("question", "problem", "input", "query")


def _generations(row: dict[str, Any]) -> list[Any]:
    resps = field_list(row, "resps")
    if not resps:
        raise LineError("resps", "resps must be a non-empty list")
    if all(isinstance(r, list) for r in resps):
        if len(resps) != 1:
            raise LineError(
                "resps", f"{len(resps)} requests per document: only generate_until pools import"
            )
        resps = resps[0]
    if not resps:
        raise LineError("resps", "resps holds no generation")
    return resps


def _filtered(row: dict[str, Any], n: int) -> list[Any] | None:
    """One filtered answer per generation, or None when the filter left fewer."""
    filtered = row.get("filtered_resps")
    if isinstance(filtered, list) and len(filtered) == 1 and isinstance(filtered[0], list):
        filtered = filtered[0]
    return filtered if isinstance(filtered, list) and len(filtered) == n else None


def _question(row: dict[str, Any]) -> str:
    doc = row.get("doc")
    if not isinstance(doc, dict):
        raise LineError("doc", "doc must be the dataset row (an object)")
    for key in _QUESTION_KEYS:
        if isinstance(doc.get(key), str) and doc[key].strip():
            return str(doc[key])
    raise LineError("doc", f"doc has no question text (looked for {', '.join(_QUESTION_KEYS)})")


def parse(row: dict[str, Any]) -> ImportedItem:
    generations = _generations(row)
    filtered = _filtered(row, len(generations))
    samples = []
    for i, generation in enumerate(generations):
        answer = None
        if filtered is not None:
            answer = entry_text(filtered[i], f"filtered_resps[{i}]")
            answer = "" if answer.strip() == NO_MATCH else answer
        samples.append(ImportedSample(text=entry_text(generation, f"resps[{i}]"), answer=answer))
    return ImportedItem(
        item_id=str(field_text(row, "doc_id")),
        question=_question(row),
        gold=str(field_text(row, "target")).strip(),
        samples=tuple(samples),
        variant=field_text(row, "filter", required=False),
    )


FORMAT = PoolFormat(
    "lm-eval", parse, answers_stored=True, default_dataset="generic", id_field="doc_id"
)
