"""What a calibration run hands a verifier gate: its scores, or its labelled samples.

A verifier gate names an earlier run (``calibration_run``); the caller reads that run here and
hands it to the strategy as plain data (strategies never open the ledger): the scores of every
distinct sample (a percentile threshold), or, for ``calibrate="match_majority"``, per item the
samples' scores, answers, correctness under the run's own grading (its items' gold and dataset
rules) and completion tokens (``CalibrationItem``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from ttscale.errors import ConfigError
from ttscale.ledger.ledger import Ledger
from ttscale.strategies.gate_target import CalibrationItem

T = TypeVar("T", bound=BaseModel)

# One row per distinct sample of the run: units of one run share a sample (same item, index and
# seed), so a sample scored by several units counts once. The mean token probability is
# recomputed from the logprobs, as the mean_logprob scorer computes it, so any run that kept
# logprobs calibrates it; other scorers' values are the stored scores.
CALIBRATION_SCORES_SQL = """
SELECT item_id, sample_index, seed,
       any_value(CASE WHEN completion_tokens > 0
                      THEN exp(least(cumulative_logprob / completion_tokens, 0)) ELSE 0 END)
           AS mean_logprob,
       count(DISTINCT score) AS stored_values,
       any_value(score) AS stored
FROM generation_calls
WHERE run_id = ? AND phase = 'sample' AND call_index = 0
GROUP BY item_id, sample_index, seed
ORDER BY item_id, sample_index, seed
"""


# The same distinct samples, with what grading and cost need, in sample-index order per item.
CALIBRATION_SAMPLES_SQL = """
SELECT c.item_id, c.sample_index, c.seed, any_value(i.gold) AS gold,
       any_value(i.dataset) AS dataset, any_value(c.extracted_answer) AS answer,
       any_value(c.completion_tokens) AS completion_tokens,
       any_value(CASE WHEN c.completion_tokens > 0
                      THEN exp(least(c.cumulative_logprob / c.completion_tokens, 0)) ELSE 0 END)
           AS mean_logprob,
       count(DISTINCT c.score) AS stored_values,
       any_value(c.score) AS stored
FROM generation_calls c
JOIN items i ON i.run_id = c.run_id AND i.item_id = c.item_id
WHERE c.run_id = ? AND c.phase = 'sample' AND c.call_index = 0
GROUP BY c.item_id, c.sample_index, c.seed
ORDER BY c.item_id, c.sample_index, c.seed
"""


def _query(ledger: Ledger | str | Path, sql: str, run_id: str) -> list[dict[str, Any]]:
    if isinstance(ledger, Ledger):
        names, rows = ledger.query(sql, [run_id])
    else:
        with Ledger(ledger, read_only=True) as opened:
            names, rows = opened.query(sql, [run_id])
    return [dict(zip(names, row, strict=True)) for row in rows]


def _score(run_id: str, row: dict[str, Any], scorer_kind: str) -> float | None:
    """The sample's ``scorer_kind`` score: recomputed (mean_logprob) or the one stored."""
    if scorer_kind == "mean_logprob":
        return row["mean_logprob"]
    if row["stored_values"] > 1:
        raise ConfigError(
            f"calibration run {run_id!r}: sample {row['sample_index']} of item "
            f"{row['item_id']!r} has {row['stored_values']} different stored scores; "
            "calibrate on a run scored by one scorer"
        )
    return row["stored"]


def calibration_items(
    ledger: Ledger | str | Path, run_id: str, scorer_kind: str
) -> list[CalibrationItem]:
    """Per item of ``run_id`` (by id), its distinct samples in sample-index order: the
    ``scorer_kind`` score, canonical answer, correctness and completion tokens of each.

    ``ConfigError`` when the run has no samples, when a sample has no such score (the gate
    scores every sample it draws: calibrate on a run that scored all of them, e.g. a best_of_n
    or weighted_vote unit at N_max with the same scorer), or two different ones.
    """
    by_item: dict[str, list[dict[str, Any]]] = {}
    for row in _query(ledger, CALIBRATION_SAMPLES_SQL, run_id):
        row["score"] = _score(run_id, row, scorer_kind)
        if row["score"] is None:
            raise ConfigError(
                f"calibration run {run_id!r}: sample {row['sample_index']} of item "
                f"{row['item_id']!r} has no {scorer_kind} score; calibrate on a run whose "
                "every sample was scored"
            )
        by_item.setdefault(row["item_id"], []).append(row)
    if not by_item:
        raise ConfigError(f"calibration run {run_id!r} has no samples in this ledger")
    try:
        return [
            CalibrationItem.graded(
                item,
                samples[0]["gold"],
                samples[0]["dataset"],
                answers=[s["answer"] for s in samples],
                scores=[s["score"] for s in samples],
                completion_tokens=[s["completion_tokens"] for s in samples],
            )
            for item, samples in by_item.items()
        ]
    except ValidationError as exc:
        raise ConfigError(f"calibration run {run_id!r}: {exc}") from None


def calibration_scores(ledger: Ledger | str | Path, run_id: str, scorer_kind: str) -> list[float]:
    """The ``scorer_kind`` score of every distinct sample of ``run_id``.

    ``ConfigError`` when the run has no such scores, or when one sample holds two different
    stored scores (two scorers scored the run: which one calibrates is ambiguous).
    """
    rows = _query(ledger, CALIBRATION_SCORES_SQL, run_id)
    scores = [score for row in rows if (score := _score(run_id, row, scorer_kind)) is not None]
    if not scores:
        raise ConfigError(
            f"calibration run {run_id!r} has no {scorer_kind} scores in this ledger "
            f"({len(rows)} samples)"
        )
    return [float(score) for score in scores]


def calibrated(config: T, ledger: Ledger | str | Path) -> T:
    """``config`` with what its calibration run hands it, when it names one and holds none yet:
    the labelled samples (``calibrate="match_majority"``), else the scores."""
    run = getattr(config, "calibration_run", None)
    if run is None:
        return config
    scorer = config.scorer.kind  # type: ignore[attr-defined]
    if getattr(config, "calibrate", "percentile") == "match_majority":
        if getattr(config, "calibration_items", None) is not None:
            return config
        items = calibration_items(ledger, run, scorer)
        update: dict[str, Any] = {"calibration_items": items}
    elif getattr(config, "calibration_scores", None) is not None:
        return config
    else:
        update = {"calibration_scores": calibration_scores(ledger, run, scorer)}
    try:  # validated, not model_copy'd, so a bad value is refused here, naming the run
        return type(config).model_validate(config.model_dump() | update)
    except ValidationError as exc:
        raise ConfigError(f"calibration run {run!r}: {exc}") from None
