"""Reads that hand plain data (rows, numpy columns) up to strategies, analysis and reports.

Those layers take data and never open the ledger or run SQL; the caller reads here and passes
the result on, e.g. ``SamplePool.from_rows(run_id, sample_pool_rows(ledger, run_id))`` or
``slices_from_columns(item_outcome_columns(con, run_id))``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import duckdb
import numpy as np

from ttscale.ledger import report_queries as q
from ttscale.ledger.ledger import Ledger

# One row per call of phase 'sample': a sample-based strategy makes exactly one call per sample,
# and the call rows are the single source of tokens.
POOL_SAMPLES_SQL = """
SELECT c.item_id, i.dataset, i.gold, c.strategy, c.budget, c.sample_index, c.completion_tokens,
       c.extracted_answer, c.score, c.cumulative_logprob, c.completion_text
FROM generation_calls c
JOIN items i USING (run_id, item_id)
WHERE c.run_id = ? AND c.phase = 'sample' AND c.call_index = 0
ORDER BY c.item_id, c.strategy, c.budget, c.sample_index
"""


def sample_pool_rows(
    ledger: Ledger | str | Path,
    run_id: str,
    strategy: str | None = None,
    budget: int | None = None,
) -> list[dict[str, Any]]:
    """The stored samples of ``run_id`` (call columns plus dataset and gold), as dicts.

    ``ledger`` is an open ``Ledger`` or a ledger file (opened read-only). ``strategy`` /
    ``budget`` restrict the rows to one unit, e.g. ("majority", 16). Raises ``ValueError`` when
    nothing matches.
    """
    if isinstance(ledger, Ledger):
        names, values = ledger.query(POOL_SAMPLES_SQL, [run_id])
    else:
        with Ledger(ledger, read_only=True) as opened:
            names, values = opened.query(POOL_SAMPLES_SQL, [run_id])
    rows = [
        row
        for row in (dict(zip(names, v, strict=True)) for v in values)
        if (strategy is None or row["strategy"] == strategy)
        and (budget is None or row["budget"] == budget)
    ]
    if not rows:
        raise ValueError(f"no samples for run {run_id!r} (strategy={strategy}, budget={budget})")
    return rows


def item_outcome_columns(con: duckdb.DuckDBPyConnection, run_id: str) -> dict[str, np.ndarray]:
    """One row per answered decision of ``run_id``, as numpy columns ordered by slice.

    Columns: dataset, language, strategy, budget, item_id, item_index and config_index (dense
    per slice), correct, completion_tokens, prompt_tokens, thinking_tokens.
    ``analysis.curves.slices_from_columns`` turns them into per-slice matrices.
    """
    return dict(con.execute(q.ITEM_OUTCOMES, [run_id]).fetchnumpy())
