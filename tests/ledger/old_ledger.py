"""Build a ledger in the format from before the lake: one DuckDB file, keyed tables.

``OLD_MIGRATIONS`` is that format's schema as it shipped (``ttscale/ledger/migrations.py`` at
commit 7ae172f~1, comments dropped), kept here because the product no longer creates it.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

import duckdb

OLD_MIGRATIONS: tuple[tuple[int, str, str], ...] = (
    (1, "create_core_tables", """
    CREATE TABLE runs (
        run_id VARCHAR PRIMARY KEY, created_at TIMESTAMP NOT NULL, fingerprint VARCHAR NOT NULL,
        engine VARCHAR NOT NULL, engine_kind VARCHAR NOT NULL, seed BIGINT NOT NULL,
        request_json JSON NOT NULL, versions_json JSON NOT NULL, prompts_json JSON NOT NULL);
    CREATE TABLE items (
        run_id VARCHAR NOT NULL, item_id VARCHAR NOT NULL, dataset VARCHAR NOT NULL,
        language VARCHAR NOT NULL, question VARCHAR NOT NULL, gold VARCHAR NOT NULL,
        metadata_json JSON, PRIMARY KEY (run_id, item_id));
    CREATE TABLE generation_calls (
        run_id VARCHAR NOT NULL, item_id VARCHAR NOT NULL, strategy VARCHAR NOT NULL,
        budget INTEGER NOT NULL, sample_index INTEGER NOT NULL, call_index INTEGER NOT NULL,
        phase VARCHAR NOT NULL, prompt_tokens INTEGER NOT NULL, completion_tokens INTEGER NOT NULL,
        thinking_tokens INTEGER NOT NULL, answer_tokens INTEGER NOT NULL,
        finish_reason VARCHAR NOT NULL, stop_reason VARCHAR, latency_s DOUBLE NOT NULL,
        used BOOLEAN NOT NULL, seed BIGINT, cumulative_logprob DOUBLE, score DOUBLE,
        extracted_answer VARCHAR, completion_text VARCHAR,
        PRIMARY KEY (run_id, item_id, strategy, budget, sample_index, call_index),
        CHECK (completion_tokens = thinking_tokens + answer_tokens));
    CREATE TABLE item_decisions (
        run_id VARCHAR NOT NULL, item_id VARCHAR NOT NULL, strategy VARCHAR NOT NULL,
        budget INTEGER NOT NULL, final_answer VARCHAR, correct BOOLEAN NOT NULL,
        stop_reason VARCHAR NOT NULL, samples_used INTEGER NOT NULL, calls INTEGER NOT NULL,
        prompt_tokens BIGINT NOT NULL, completion_tokens BIGINT NOT NULL,
        thinking_tokens BIGINT NOT NULL, answer_tokens BIGINT NOT NULL,
        answered_language VARCHAR, detail_json JSON, error VARCHAR,
        PRIMARY KEY (run_id, item_id, strategy, budget));
    CREATE TABLE input_errors (
        run_id VARCHAR NOT NULL, object VARCHAR NOT NULL, line INTEGER NOT NULL, field VARCHAR,
        reason VARCHAR NOT NULL, PRIMARY KEY (run_id, object, line));
    """),
    (2, "create_spend_and_cost_views", """
    CREATE VIEW item_spend AS
    SELECT run_id, item_id, strategy, budget, count(*) AS calls,
           sum(prompt_tokens) AS prompt_tokens, sum(completion_tokens) AS completion_tokens
    FROM generation_calls GROUP BY ALL;
    """),
    (3, "add_run_lifecycle", """
    ALTER TABLE runs ADD COLUMN started_at TIMESTAMP;
    ALTER TABLE runs ADD COLUMN finished_at TIMESTAMP;
    ALTER TABLE runs ADD COLUMN status VARCHAR;
    ALTER TABLE runs ADD COLUMN flow_run_id VARCHAR;
    ALTER TABLE runs ADD COLUMN ttscale_version VARCHAR;
    """),
)  # fmt: skip
TABLES = ("runs", "items", "generation_calls", "item_decisions", "input_errors")


def build_old_ledger(path: Path, run_ids: list[str], *, version: int = 3, items: int = 6) -> Path:
    """An old-format ledger at schema ``version`` with ``items`` items × 2 units per run; the
    first decision of each run has its detail encoded twice, as an early writer stored it."""
    con = duckdb.connect(str(path))
    con.execute(
        "CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, name VARCHAR NOT NULL, "
        "applied_at TIMESTAMP NOT NULL)"
    )
    for number, name, sql in OLD_MIGRATIONS[:version]:
        con.execute(sql)
        con.execute("INSERT INTO schema_migrations VALUES (?, ?, now())", [number, name])
    for run_id in run_ids:
        rng = random.Random(run_id)
        con.execute(
            "INSERT INTO runs (run_id, created_at, fingerprint, engine, engine_kind, seed, "
            "request_json, versions_json, prompts_json) VALUES (?, now(), 'f', 'scripted', "
            "'scripted', 0, '{}', '{}', '{}')",
            [run_id],
        )
        if version >= 3:
            con.execute("UPDATE runs SET status = 'completed' WHERE run_id = ?", [run_id])
        con.execute(
            "INSERT INTO input_errors VALUES (?, 'q.jsonl', 3, 'answer', 'missing')", [run_id]
        )
        for i in range(items):
            item = f"q{i}"
            con.execute(
                "INSERT INTO items VALUES (?, ?, 'demo', 'en', ?, ?, '{}')",
                [run_id, item, f"What is {i}?", str(i)],
            )
            for strategy, budget in (("majority", 2), ("budget_forcing", 64)):
                tokens = []
                for sample in range(budget if strategy == "majority" else 1):
                    thinking, answer = rng.randint(0, 50), rng.randint(1, 20)
                    tokens.append((thinking, answer))
                    con.execute(
                        "INSERT INTO generation_calls VALUES (?, ?, ?, ?, ?, 0, 'sample', 12, ?, "
                        "?, ?, 'stop', NULL, 0.01, true, ?, NULL, NULL, ?, 'text')",
                        [run_id, item, strategy, budget, sample, thinking + answer, thinking,
                         answer, sample, str(i)],
                    )  # fmt: skip
                detail = {"votes": {str(i): len(tokens)}}
                # The first decision as an early writer stored it: json.dumps into a JSON column.
                encoded = json.dumps(json.dumps(detail) if i == 0 else detail)
                con.execute(
                    "INSERT INTO item_decisions VALUES (?, ?, ?, ?, ?, ?, 'budget_reached', ?, ?, "
                    "?, ?, ?, ?, 'en', ?, NULL)",
                    [run_id, item, strategy, budget, str(i), rng.random() < 0.6, len(tokens),
                     len(tokens), 12 * len(tokens), sum(t + a for t, a in tokens),
                     sum(t for t, _ in tokens), sum(a for _, a in tokens), encoded],
                )  # fmt: skip
    con.close()
    return path


def table_counts(con: duckdb.DuckDBPyConnection, catalog: str) -> dict[str, int]:
    """Rows per ledger table in ``catalog`` (an attached old file, or ``lake``)."""
    return {
        t: int(con.execute(f'SELECT count(*) FROM "{catalog}".main.{t}').fetchone()[0])  # type: ignore[index]
        for t in TABLES
    }
