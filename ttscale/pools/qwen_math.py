"""``qwen-math``: the output of Qwen2.5-Math's evaluation (``evaluation/math_eval.py``).

One line per problem: ``idx``, ``question``, ``gt`` (the parsed gold answer), ``code`` (the n
sampled completions), ``pred`` (the answer Qwen's parser extracted from each, "" when none),
``score`` (Qwen's grader's verdict on each pred) and, when a reward model scored them,
``pred_score`` (one ``[value]`` per sample). ``pred``, ``score`` and ``pred_score`` are aligned
with ``code`` by position. Other keys (the dataset's own fields, ``report``, ``gt_cot``) are
ignored.

Qwen's maj@k (``evaluation/rm_maj_eval.py``) groups the first k preds by exact string, "" being
a group like any other, takes the group ``Counter.most_common(1)`` names (on a tie the group
whose pred occurred first) and scores the item with ``score`` of that group's first sample.
``pool_majority_at_k`` is that rule, so an import can state the pool's own figure.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Any

from ttscale.pools.model import (
    ImportedItem,
    ImportedSample,
    LineError,
    PoolFormat,
    entry_number,
    entry_text,
    entry_verdict,
    field_list,
    field_text,
)


def parse(row: dict[str, Any]) -> ImportedItem:
    codes = field_list(row, "code")
    if not codes:
        raise LineError("code", "code must be a non-empty list of completions")
    n = len(codes)
    preds = field_list(row, "pred", n)
    if preds is None:
        raise LineError("pred", "missing field 'pred'")
    verdicts = field_list(row, "score", n) or [None] * n
    scores = field_list(row, "pred_score", n) or [None] * n
    samples = tuple(
        ImportedSample(
            text=entry_text(code, f"code[{i}]"),
            answer=entry_text(pred, f"pred[{i}]"),
            verdict=entry_verdict(verdict, f"score[{i}]"),
            score=entry_number(score, f"pred_score[{i}]"),
        )
        for i, (code, pred, verdict, score) in enumerate(
            zip(codes, preds, verdicts, scores, strict=True)
        )
    )
    gold = row.get("gt")
    if isinstance(gold, list):
        raise LineError("gt", "gt is a list (several gold answers): not supported")
    return ImportedItem(
        item_id=str(field_text(row, "idx")),
        question=str(field_text(row, "question")),
        gold=str(field_text(row, "gt")).strip(),
        samples=samples,
    )


def pool_majority_at_k(preds: Sequence[str], verdicts: Sequence[bool], k: int) -> bool:
    """Qwen's maj@k verdict for one problem, from its own preds and scores (module docstring)."""
    first = preds[:k]
    winner = Counter(first).most_common(1)[0][0]
    return bool(verdicts[first.index(winner)])


FORMAT = PoolFormat(
    "qwen-math",
    parse,
    answers_stored=True,
    default_dataset="math",
    id_field="idx",
    own_majority_at_k=pool_majority_at_k,
)
