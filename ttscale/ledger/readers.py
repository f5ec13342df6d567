"""Reads that hand plain data (rows, numpy columns) up to strategies, analysis and reports.

Those layers take data and never open the ledger or run SQL; the caller reads here and passes
the result on, e.g. ``SamplePool.from_rows(run_id, sample_pool_rows(ledger, run_id))`` or
``build_report(read_report_data(con, run_id))``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import duckdb
import numpy as np

from ttscale.errors import ConfigError
from ttscale.ledger import report_queries as q
from ttscale.ledger.ledger import Ledger
from ttscale.reports.data import DeclineCandidate, ItemOutcomes, ReportData

# One row per call of phase 'sample': a sample-based strategy makes exactly one call per sample,
# and the call rows are the single source of tokens.
POOL_SAMPLES_SQL = """
SELECT c.item_id, i.dataset, i.gold, c.strategy, c.budget, c.sample_index, c.completion_tokens,
       c.extracted_answer, c.score, c.cumulative_logprob, c.completion_text, {confidence}
FROM generation_calls c
JOIN items i USING (run_id, item_id)
WHERE c.run_id = ? AND c.phase = 'sample' AND c.call_index = 0
ORDER BY c.item_id, c.strategy, c.budget, c.sample_index
"""
_CONFIDENCE_VERSION = 6
"""The migration that added the calls' confidence columns; a lake opened read-only is not
migrated, so an older one is read without them."""
_CONFIDENCE = ("mean_confidence", "lowest_group_confidence", "tail_confidence")


def _pool_samples_sql(ledger: Ledger) -> str:
    if ledger.schema_version() >= _CONFIDENCE_VERSION:
        columns = ", ".join(f"c.{name}" for name in _CONFIDENCE)
    else:
        columns = ", ".join(f"NULL::DOUBLE AS {name}" for name in _CONFIDENCE)
    return POOL_SAMPLES_SQL.format(confidence=columns)


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
        names, values = ledger.query(_pool_samples_sql(ledger), [run_id])
    else:
        with Ledger(ledger, read_only=True) as opened:
            names, values = opened.query(_pool_samples_sql(opened), [run_id])
    rows = [
        row
        for row in (dict(zip(names, v, strict=True)) for v in values)
        if (strategy is None or row["strategy"] == strategy)
        and (budget is None or row["budget"] == budget)
    ]
    if not rows:
        raise ValueError(f"no samples for run {run_id!r} (strategy={strategy}, budget={budget})")
    return rows


def item_outcomes(con: duckdb.DuckDBPyConnection) -> ItemOutcomes:
    """Every answered decision of the run whose spend ``read_report_data`` staged, as numbers,
    and the names they stand for. ``analysis.curves.slices_from_outcomes`` turns them into
    per-slice matrices."""
    for statement in q.CREATE_OUTCOME_INDICES:
        con.execute(statement)
    slices = [(str(d), str(lang)) for d, lang in con.execute(q.OUTCOME_SLICES).fetchall()]
    configs: list[list[tuple[str, int]]] = [[] for _ in slices]
    for index, strategy, budget in con.execute(q.OUTCOME_CONFIGS).fetchall():
        configs[index].append((str(strategy), int(budget)))
    items = con.execute(q.OUTCOME_ITEMS).fetchnumpy()
    # Ordered by slice, then item: each slice's ids are one run of rows.
    bounds = np.searchsorted(items["slice_index"], np.arange(len(slices) + 1))
    item_ids = [
        [str(i) for i in items["item_id"][bounds[k] : bounds[k + 1]]] for k in range(len(slices))
    ]
    columns = dict(con.execute(q.ITEM_OUTCOMES).fetchnumpy())
    return ItemOutcomes(slices=slices, configs=configs, item_ids=item_ids, columns=columns)


def read_report_data(
    con: duckdb.DuckDBPyConnection, run_id: str, decline_examples: int = 3
) -> ReportData:
    """Everything the report of ``run_id`` needs, for ``reports.build_report``.

    ``decline_examples`` candidates are read per budget pair (``ReportData.decline_candidates``);
    a report may show up to that many per finding. Raises ``ConfigError`` if the run is unknown.
    """
    run_row = con.execute(q.RUN_METADATA, [run_id]).fetchone()
    if run_row is None:
        raise ConfigError(f"run {run_id!r} is not in the ledger")
    totals = _one(con, q.CALL_TOTALS, run_id)
    calls, prompt, completion, thinking, discarded = totals[:5]
    tokens, seconds, scoring_calls, scoring_tokens, generated = totals[5:]
    (input_errors,) = _one(con, q.INPUT_ERROR_COUNT, run_id)
    (errored_units,) = _one(con, q.ERRORED_UNITS, run_id)
    candidates = []
    if decline_examples > 0:
        rows = con.execute(
            q.DECLINE_CANDIDATES, {"run_id": run_id, "per_pair": decline_examples}
        ).fetchall()
        candidates = [DeclineCandidate(*row) for row in rows]
    con.execute(q.CREATE_DECISION_SPEND, [run_id])
    try:
        outcomes = item_outcomes(con)
        summary = _rows(con, q.SUMMARY_BY_STRATEGY_BUDGET)
        slice_summary = _rows(con, q.SUMMARY_BY_SLICE)
    finally:
        for statement in q.DROP_REPORT_TABLES:
            con.execute(statement)
    return ReportData(
        run=dict(zip(_RUN_COLUMNS, run_row, strict=True)),
        item_outcomes=outcomes,
        summary=summary,
        slice_summary=slice_summary,
        stop_reasons=[tuple(row) for row in con.execute(q.STOP_REASONS, [run_id]).fetchall()],
        call_totals=(calls, prompt, completion, thinking, discarded),
        scoring_totals=(int(scoring_calls), int(scoring_tokens)),
        generated_completion_tokens=int(generated),
        measured_completion_tokens=tokens,
        measured_latency_s=seconds,
        input_errors=int(input_errors),
        errored_units=int(errored_units),
        decline_candidates=candidates,
        decline_examples_per_pair=decline_examples,
        thinking_axes=_rows(con, q.THINKING_AXES, {"run_id": run_id}),
    )


_RUN_COLUMNS = (
    "run_id",
    "created_at",
    "fingerprint",
    "engine",
    "engine_kind",
    "seed",
    "request_json",
    "versions_json",
    "prompts_json",
)
"""The columns of ``report_queries.RUN_METADATA``, in order."""


def _one(con: duckdb.DuckDBPyConnection, sql: str, run_id: str) -> tuple[Any, ...]:
    row = con.execute(sql, [run_id]).fetchone()
    assert row is not None, "aggregate queries always return one row"
    return tuple(row)


def _rows(
    con: duckdb.DuckDBPyConnection, sql: str, params: dict[str, Any] | None = None
) -> list[dict[str, Any]]:
    cursor = con.execute(sql, params or {})
    names = [d[0] for d in cursor.description]
    return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]
