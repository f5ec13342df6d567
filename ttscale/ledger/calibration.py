"""The scores of a calibration run, for a strategy whose threshold is a percentile of them.

A verifier gate names an earlier run (``calibration_run``); the caller reads that run's sample
scores here and hands them to the strategy as plain data (strategies never open the ledger).
"""

from __future__ import annotations

from pathlib import Path
from typing import TypeVar

from pydantic import BaseModel

from ttscale.errors import ConfigError
from ttscale.ledger.ledger import Ledger

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


def calibration_scores(ledger: Ledger | str | Path, run_id: str, scorer_kind: str) -> list[float]:
    """The ``scorer_kind`` score of every distinct sample of ``run_id``.

    ``ConfigError`` when the run has no such scores, or when one sample holds two different
    stored scores (two scorers scored the run: which one calibrates is ambiguous).
    """
    if isinstance(ledger, Ledger):
        _, rows = ledger.query(CALIBRATION_SCORES_SQL, [run_id])
    else:
        with Ledger(ledger, read_only=True) as opened:
            _, rows = opened.query(CALIBRATION_SCORES_SQL, [run_id])
    if scorer_kind == "mean_logprob":
        scores = [row[3] for row in rows if row[3] is not None]
    else:
        mixed = [row for row in rows if row[4] > 1]
        if mixed:
            item, index = mixed[0][0], mixed[0][1]
            raise ConfigError(
                f"calibration run {run_id!r}: sample {index} of item {item!r} has "
                f"{mixed[0][4]} different stored scores; calibrate on a run scored by one scorer"
            )
        scores = [row[5] for row in rows if row[5] is not None]
    if not scores:
        raise ConfigError(
            f"calibration run {run_id!r} has no {scorer_kind} scores in this ledger "
            f"({len(rows)} samples)"
        )
    return [float(score) for score in scores]


def calibrated(config: T, ledger: Ledger | str | Path) -> T:
    """``config`` with its calibration run's scores, when it names one and holds none yet."""
    run = getattr(config, "calibration_run", None)
    if run is None or getattr(config, "calibration_scores", None) is not None:
        return config
    scores = calibration_scores(ledger, run, config.scorer.kind)  # type: ignore[attr-defined]
    return config.model_copy(update={"calibration_scores": tuple(scores)})
