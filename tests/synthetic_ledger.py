"""Writes a synthetic run (``ttscale.analysis.synthetic``) into a DuckDB ledger, for tests and bench.

The planted outcomes are drawn in analysis (numpy); this module is the SQL side, kept out of the
package because nothing but tests and benchmarks writes a ledger this way.
"""

from __future__ import annotations

import atexit
import json
import shutil
import tempfile
from pathlib import Path

import duckdb
import numpy as np

from ttscale.analysis.synthetic import SyntheticLedgerSpec, synthetic_tables
from ttscale.ledger import Ledger


def insert_run(con: duckdb.DuckDBPyConnection, spec: SyntheticLedgerSpec) -> None:
    """The ``runs`` row and the ``items`` rows of a synthetic run."""
    con.execute(
        "INSERT INTO runs (run_id, created_at, fingerprint, engine, engine_kind, seed, "
        "request_json, versions_json, prompts_json, status) VALUES (?, now()::TIMESTAMP, "
        "'synthetic', 'synthetic:planted', 'scripted', ?, ?, ?, ?, 'completed')",
        [
            spec.run_id,
            spec.seed,
            json.dumps({"strategies": [c.strategy for c in spec.curves]}),
            json.dumps({"ttscale": "synthetic"}),
            json.dumps({"template": spec.question_template}),
        ],
    )
    questions = [spec.question_template.format(index=i) for i in range(spec.items_per_slice)]
    con.execute(
        "INSERT INTO items "
        "SELECT $run_id, 'item-' || lpad(i::VARCHAR, 8, '0'), "
        "       ($datasets::VARCHAR[])[i // $n + 1], ($languages::VARCHAR[])[i // $n + 1], "
        "       ($questions::VARCHAR[])[i % $n + 1], (i % $n)::VARCHAR, NULL "
        "FROM range($total) s(i)",
        {
            "run_id": spec.run_id,
            "datasets": [d for d, _ in spec.slices],
            "languages": [lang for _, lang in spec.slices],
            "questions": questions,
            "n": spec.items_per_slice,
            "total": len(spec.slices) * spec.items_per_slice,
        },
    )


CALLS_SELECT = """
SELECT ? AS run_id, 'item-' || lpad(item_index::VARCHAR, 8, '0') AS item_id,
       (?::VARCHAR[])[strategy_index + 1] AS strategy, budget::INTEGER AS budget,
       sample_index::INTEGER AS sample_index, call_index::INTEGER AS call_index,
       ['sample', 'thinking', 'answer'][phase_code + 1] AS phase,
       ?::INTEGER AS prompt_tokens, completion_tokens::INTEGER AS completion_tokens,
       thinking_tokens::INTEGER AS thinking_tokens, answer_tokens::INTEGER AS answer_tokens,
       'stop' AS finish_reason, NULL::VARCHAR AS stop_reason,
       completion_tokens / 1000.0 AS latency_s, true AS used, NULL::BIGINT AS seed,
       NULL::DOUBLE AS cumulative_logprob, NULL::DOUBLE AS score,
       NULL::VARCHAR AS extracted_answer, NULL::VARCHAR AS completion_text,
       NULL::DOUBLE AS mean_confidence, NULL::DOUBLE AS lowest_group_confidence,
       NULL::DOUBLE AS tail_confidence
FROM {source}
"""


def insert_decisions(
    con: duckdb.DuckDBPyConnection, spec: SyntheticLedgerSpec, decisions: dict[str, np.ndarray]
) -> None:
    """``item_decisions`` rows (final answer: the gold when right, gold + 1 when wrong)."""
    con.register("synthetic_decisions", decisions)
    try:
        con.execute(
            "INSERT INTO item_decisions "
            "SELECT ?, 'item-' || lpad(item_index::VARCHAR, 8, '0'), "
            "       (?::VARCHAR[])[strategy_index + 1], budget, "
            "       ((item_index % ?) + CASE WHEN correct THEN 0 ELSE 1 END)::VARCHAR, correct, "
            "       'budget_reached', samples_used, calls, calls * ?, completion_tokens, "
            "       thinking_tokens, answer_tokens, NULL, NULL, NULL "
            "FROM synthetic_decisions",
            [
                spec.run_id,
                [c.strategy for c in spec.curves],
                spec.items_per_slice,
                spec.prompt_tokens,
            ],
        )
    finally:
        con.unregister("synthetic_decisions")


def synthetic_ledger(
    spec: SyntheticLedgerSpec, path: str | Path | None = None
) -> duckdb.DuckDBPyConnection:
    """A ledger at ``path`` (a fresh temporary lake by default) holding the synthetic run; its
    connection.

    ``Ledger`` opens it, so it is migrated exactly as the service's ledger is. A lake is files
    (catalog and Parquet), so "in memory" is a new folder that nothing else shares.
    """
    if path is None:
        folder = tempfile.mkdtemp(prefix="ttscale-synthetic-")
        atexit.register(shutil.rmtree, folder, ignore_errors=True)
        path = Path(folder) / "ledger.sqlite"
    con = Ledger(path).con
    write_synthetic_ledger(con, spec)
    return con


def write_synthetic_ledger(con: duckdb.DuckDBPyConnection, spec: SyntheticLedgerSpec) -> None:
    """Write the whole synthetic run into an open ledger's connection."""
    _, calls, decisions = synthetic_tables(spec)
    insert_run(con, spec)
    con.register("synthetic_calls", calls)
    try:
        con.execute(
            "INSERT INTO generation_calls BY NAME " + CALLS_SELECT.format(source="synthetic_calls"),
            [spec.run_id, [c.strategy for c in spec.curves], spec.prompt_tokens],
        )
    finally:
        con.unregister("synthetic_calls")
    insert_decisions(con, spec, decisions)
