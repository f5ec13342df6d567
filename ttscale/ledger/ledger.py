"""The DuckDB ledger. All of the service's write SQL lives here; report SQL in report_queries.

Ingest is idempotent and atomic per unit (run, item, strategy, budget): a unit's calls and its
decision land together or not at all, and a unit already in the ledger is never added again.
Decision token totals are summed from the unit's call rows at ingest, so they cannot disagree.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb

from ttscale.errors import LedgerError
from ttscale.ledger.migrations import MIGRATIONS
from ttscale.schemas import BadRow, Question

CALL_COLUMNS = {
    "run_id": "VARCHAR", "item_id": "VARCHAR", "strategy": "VARCHAR", "budget": "INTEGER",
    "sample_index": "INTEGER", "call_index": "INTEGER", "phase": "VARCHAR",
    "prompt_tokens": "INTEGER", "completion_tokens": "INTEGER", "thinking_tokens": "INTEGER",
    "answer_tokens": "INTEGER", "finish_reason": "VARCHAR", "stop_reason": "VARCHAR",
    "latency_s": "DOUBLE", "used": "BOOLEAN", "seed": "BIGINT", "cumulative_logprob": "DOUBLE",
    "score": "DOUBLE", "extracted_answer": "VARCHAR", "completion_text": "VARCHAR",
    "source": "VARCHAR",
}  # fmt: skip
UNIT_COLUMNS = {
    "run_id": "VARCHAR", "item_id": "VARCHAR", "strategy": "VARCHAR", "budget": "INTEGER",
    "final_answer": "VARCHAR", "correct": "BOOLEAN", "stop_reason": "VARCHAR",
    "samples_used": "INTEGER", "answered_language": "VARCHAR", "detail_json": "JSON",
    "error": "VARCHAR", "source": "VARCHAR",
}  # fmt: skip
_KEY = "run_id, item_id, strategy, budget"

_INGEST_SQL = f"""
CREATE OR REPLACE TEMP TABLE stage_units AS
    SELECT * FROM read_json(?, format='newline_delimited', columns={{cols_units}});
CREATE OR REPLACE TEMP TABLE stage_calls AS
    SELECT * FROM read_json(?, format='newline_delimited', columns={{cols_calls}});
-- One source per unit (a zombie worker may have written a unit twice), none already ingested.
CREATE OR REPLACE TEMP TABLE chosen AS
    SELECT {_KEY}, min(source) AS source FROM stage_units u
    WHERE NOT EXISTS (SELECT 1 FROM item_decisions d
                      WHERE (d.run_id, d.item_id, d.strategy, d.budget)
                          = (u.run_id, u.item_id, u.strategy, u.budget))
    GROUP BY ALL;
INSERT INTO generation_calls
    SELECT c.* EXCLUDE (source) FROM stage_calls c JOIN chosen USING ({_KEY}, source);
INSERT INTO item_decisions
    SELECT u.run_id, u.item_id, u.strategy, u.budget, u.final_answer, u.correct, u.stop_reason,
           u.samples_used,
           count(c.call_index), coalesce(sum(c.prompt_tokens), 0),
           coalesce(sum(c.completion_tokens), 0), coalesce(sum(c.thinking_tokens), 0),
           coalesce(sum(c.answer_tokens), 0),
           u.answered_language, u.detail_json, u.error
    FROM stage_units u JOIN chosen USING ({_KEY}, source)
    LEFT JOIN stage_calls c USING ({_KEY}, source)
    GROUP BY ALL;
"""


def _columns_literal(columns: dict[str, str]) -> str:
    return "{" + ", ".join(f"'{k}': '{v}'" for k, v in columns.items()) + "}"


class Ledger:
    """A DuckDB ledger file. Open read-only for queries; one writer process at a time."""

    def __init__(self, path: str | Path, *, read_only: bool = False) -> None:
        self.path = Path(path)
        try:
            if read_only:
                if not self.path.exists():
                    raise LedgerError(f"no ledger at {self.path}")
                self.con = duckdb.connect(str(self.path), read_only=True)
            else:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                self.con = duckdb.connect(str(self.path))
                self.migrate()
        except duckdb.Error as exc:
            raise LedgerError(f"cannot open ledger {self.path}: {exc}") from None

    def __enter__(self) -> Ledger:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.con.close()

    def schema_version(self) -> int:
        row = self.con.execute(
            "SELECT count(*) FROM information_schema.tables WHERE table_name = 'schema_migrations'"
        ).fetchone()
        if not row or not row[0]:
            return 0
        version = self.con.execute("SELECT max(version) FROM schema_migrations").fetchone()
        return int(version[0]) if version and version[0] is not None else 0

    def migrate(self) -> list[str]:
        """Apply every migration newer than the file's version; returns their names."""
        self.con.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations ("
            "version INTEGER PRIMARY KEY, name VARCHAR NOT NULL, applied_at TIMESTAMP NOT NULL)"
        )
        current = self.schema_version()
        applied = []
        for migration in MIGRATIONS:
            if migration.version <= current:
                continue
            self.con.execute("BEGIN TRANSACTION")
            try:
                self.con.execute(migration.sql)
                self.con.execute(
                    "INSERT INTO schema_migrations VALUES (?, ?, ?)",
                    [migration.version, migration.name, datetime.now(UTC)],
                )
                self.con.execute("COMMIT")
            except duckdb.Error as exc:
                self.con.execute("ROLLBACK")
                raise LedgerError(f"migration {migration.name} failed: {exc}") from None
            applied.append(migration.name)
        return applied

    def record_run(
        self,
        *,
        run_id: str,
        fingerprint: str,
        engine: str,
        engine_kind: str,
        seed: int,
        request: dict[str, Any],
        versions: dict[str, Any],
        prompts: dict[str, Any],
    ) -> None:
        """Add the run's row once; a resumed run keeps its first row."""
        self.con.execute(
            "INSERT OR IGNORE INTO runs VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [
                run_id,
                datetime.now(UTC),
                fingerprint,
                engine,
                engine_kind,
                seed,
                json.dumps(request),
                json.dumps(versions),
                json.dumps(prompts),
            ],
        )

    def add_items(self, run_id: str, questions: Sequence[Question]) -> None:
        rows = [
            [run_id, q.id, q.dataset, q.language, q.question, q.answer, json.dumps(q.metadata)]
            for q in questions
        ]
        if rows:
            self.con.executemany("INSERT OR IGNORE INTO items VALUES (?, ?, ?, ?, ?, ?, ?)", rows)

    def add_input_errors(self, run_id: str, bad_rows: Sequence[BadRow]) -> None:
        rows = [[run_id, b.object, b.line, b.field, b.reason] for b in bad_rows]
        if rows:
            self.con.executemany("INSERT OR IGNORE INTO input_errors VALUES (?, ?, ?, ?, ?)", rows)

    def ingest_units(self, parts: Iterable[tuple[str, list[dict[str, Any]]]]) -> tuple[int, int]:
        """Ingest unit records from shard parts ``(source, records)``.

        Returns (units added, calls added); units already in the ledger add nothing.
        """
        with tempfile.TemporaryDirectory(prefix="ttscale-ingest-") as tmp:
            units_path, calls_path = Path(tmp) / "units.jsonl", Path(tmp) / "calls.jsonl"
            with units_path.open("w") as units_out, calls_path.open("w") as calls_out:
                for source, records in parts:
                    for record in records:
                        unit = {
                            k: record.get(k)
                            for k in UNIT_COLUMNS
                            if k not in ("detail_json", "source")
                        }
                        unit |= {
                            "detail_json": json.dumps(record.get("detail") or {}),
                            "source": source,
                        }
                        units_out.write(json.dumps(unit) + "\n")
                        for call in record["calls"]:
                            row = {
                                k: record[k] for k in ("run_id", "item_id", "strategy", "budget")
                            }
                            calls_out.write(json.dumps(row | call | {"source": source}) + "\n")
            if units_path.stat().st_size == 0:
                return 0, 0
            # An empty calls file has no rows to infer from: read_json with explicit columns copes.
            before = self._counts()
            sql = _INGEST_SQL.format(
                cols_units=_columns_literal(UNIT_COLUMNS), cols_calls=_columns_literal(CALL_COLUMNS)
            )
            self.con.execute("BEGIN TRANSACTION")
            try:
                for statement in filter(str.strip, sql.split(";")):
                    if "stage_units AS" in statement:
                        self.con.execute(statement, [str(units_path)])
                    elif "stage_calls AS" in statement:
                        self.con.execute(statement, [str(calls_path)])
                    else:
                        self.con.execute(statement)
                self.con.execute("COMMIT")
            except duckdb.Error as exc:
                self.con.execute("ROLLBACK")
                raise LedgerError(f"ingest failed: {exc}") from None
            after = self._counts()
            return after[0] - before[0], after[1] - before[1]

    def _counts(self) -> tuple[int, int]:
        row = self.con.execute(
            "SELECT (SELECT count(*) FROM item_decisions), (SELECT count(*) FROM generation_calls)"
        ).fetchone()
        assert row is not None
        return int(row[0]), int(row[1])

    def query(
        self, sql: str, params: Sequence[Any] | None = None
    ) -> tuple[list[str], list[tuple[Any, ...]]]:
        """Run one statement; returns column names and rows."""
        try:
            cursor = self.con.execute(sql, list(params or []))
        except duckdb.Error as exc:
            raise LedgerError(f"query failed: {exc}") from None
        names = [d[0] for d in cursor.description] if cursor.description else []
        return names, cursor.fetchall()
