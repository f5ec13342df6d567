"""The DuckDB ledger. All of the service's write SQL lives here; report SQL in report_queries.

Ingest is bulk, atomic and idempotent. ``ingest_run`` writes a run's row, items, bad input rows
and every unit (its decision and all its calls) in one transaction, so a reader sees all of a run's
ingest or none of it, and a failed or killed ingest leaves nothing behind to be redone. A unit
(run, item, strategy, budget) already in the ledger is never added again, and one written more
than once is taken once: a successful attempt over the errored ones it superseded, else the copy
in the part first by name (a zombie worker's duplicate). Decision token totals are summed in SQL
from the unit's own call rows, so they cannot disagree.

The records are not parsed or re-encoded row by row in Python: every part's JSONL lines are
copied, each wrapped with its part's name, into one temporary NDJSON file that DuckDB reads in a
single ``read_json`` scan; items and bad rows likewise (one small NDJSON file each).
"""

from __future__ import annotations

import contextlib
import json
import tempfile
from collections.abc import Iterable, Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb

from ttscale.errors import LedgerError
from ttscale.ledger.migrations import MIGRATIONS
from ttscale.schemas import BadRow, Question

Part = tuple[str, bytes | Sequence[dict[str, Any]]]
"""A shard part ``(source, content)``: its object key and its JSONL bytes or parsed records."""

_KEY = ("run_id", "item_id", "strategy", "budget")
# The fields of one call in a unit record's ``calls``, as generation_calls stores them.
CALL_FIELDS = {
    "sample_index": "INTEGER", "call_index": "INTEGER", "phase": "VARCHAR",
    "prompt_tokens": "INTEGER", "completion_tokens": "INTEGER", "thinking_tokens": "INTEGER",
    "answer_tokens": "INTEGER", "finish_reason": "VARCHAR", "stop_reason": "VARCHAR",
    "latency_s": "DOUBLE", "used": "BOOLEAN", "seed": "BIGINT", "cumulative_logprob": "DOUBLE",
    "score": "DOUBLE", "extracted_answer": "VARCHAR", "completion_text": "VARCHAR",
}  # fmt: skip
# The fields of a unit record (runner.run_unit) other than its calls. Unknown keys are ignored.
UNIT_FIELDS = {
    "run_id": "VARCHAR", "item_id": "VARCHAR", "strategy": "VARCHAR", "budget": "INTEGER",
    "final_answer": "VARCHAR", "correct": "BOOLEAN", "stop_reason": "VARCHAR",
    "samples_used": "INTEGER", "answered_language": "VARCHAR", "detail": "JSON",
    "error": "VARCHAR",
}  # fmt: skip
_TOKENS = ("prompt_tokens", "completion_tokens", "thinking_tokens", "answer_tokens")


def _struct(fields: dict[str, str]) -> str:
    return "STRUCT(" + ", ".join(f"{name} {kind}" for name, kind in fields.items()) + ")"


def _columns(fields: dict[str, str]) -> str:
    """A ``read_json`` columns literal; every line is read with these, and only these, keys."""
    return "{" + ", ".join(f"'{name}': '{kind}'" for name, kind in fields.items()) + "}"


_UNIT_STRUCT = _struct(UNIT_FIELDS | {"calls": _struct(CALL_FIELDS) + "[]"})
_KEY_COLS = ", ".join(_KEY)
_KEY_MATCH = " AND ".join(f"d.{k} = u.{k}" for k in _KEY)
_CALL_COLS = ", ".join([*_KEY, *CALL_FIELDS])

# Each statement runs on its own, in order, inside the ingest's transaction; ? is the NDJSON file
# of wrapped unit records, one {"source": <part key>, "unit": <record>} a line. The records are
# staged once, nested as written; only the chosen units' row ids are copied after that.
_INGEST_UNITS_SQL: tuple[str, ...] = (
    f"""CREATE OR REPLACE TEMP TABLE ingest_units AS
    SELECT source, unnest(unit)
    FROM read_json(?, format='newline_delimited',
                   columns={_columns({"source": "VARCHAR", "unit": _UNIT_STRUCT})})""",
    # A unit the ledger holds as errored is replaced when a retry of it succeeded: the ledger's
    # decision is the unit's outcome (the errored attempt stays in its part object).
    f"""CREATE OR REPLACE TEMP TABLE ingest_healed AS
    SELECT DISTINCT {", ".join(f"u.{k}" for k in _KEY)} FROM ingest_units u
    JOIN item_decisions d ON {_KEY_MATCH}
    WHERE d.stop_reason = 'error' AND u.error IS NULL""",
    f"""DELETE FROM generation_calls c USING ingest_healed h
    WHERE {" AND ".join(f"c.{k} = h.{k}" for k in _KEY)}""",
    f"""DELETE FROM item_decisions d USING ingest_healed h
    WHERE {" AND ".join(f"d.{k} = h.{k}" for k in _KEY)}""",
    # One record per unit, and none for a unit already in the ledger. A unit may have several:
    # a retry after an errored attempt (the success wins) or a zombie worker's second copy (the
    # part first by name wins).
    f"""CREATE OR REPLACE TEMP TABLE ingest_chosen AS
    SELECT arg_min(u.rowid, (u.error IS NOT NULL, u.source)) AS uid FROM ingest_units u
    WHERE NOT EXISTS (SELECT 1 FROM item_decisions d WHERE {_KEY_MATCH})
    GROUP BY {_KEY_COLS}""",
    f"""INSERT INTO generation_calls ({_CALL_COLS})
    SELECT {_KEY_COLS}, unnest(calls, recursive := true)
    FROM ingest_units WHERE rowid IN (SELECT uid FROM ingest_chosen)""",
    # Decision totals are sums over the unit's own call rows, never the record's say-so.
    f"""INSERT INTO item_decisions
    SELECT run_id, item_id, strategy, budget, final_answer, correct, stop_reason, samples_used,
           coalesce(len(calls), 0),
           {", ".join(f"coalesce(list_sum([c.{t} FOR c IN calls]), 0)" for t in _TOKENS)},
           answered_language, coalesce(detail, '{{}}'), error
    FROM ingest_units WHERE rowid IN (SELECT uid FROM ingest_chosen)""",
)
_INGEST_COUNTS_SQL = """SELECT count(*), coalesce(sum(len(calls)), 0)
    FROM ingest_units WHERE rowid IN (SELECT uid FROM ingest_chosen)"""
_INGEST_CLEANUP_SQL = (
    "DROP TABLE IF EXISTS ingest_units",
    "DROP TABLE IF EXISTS ingest_chosen",
    "DROP TABLE IF EXISTS ingest_healed",
)

_ITEM_FIELDS = {
    "ord": "BIGINT", "item_id": "VARCHAR", "dataset": "VARCHAR", "language": "VARCHAR",
    "question": "VARCHAR", "gold": "VARCHAR", "metadata_json": "VARCHAR",
}  # fmt: skip
# An item id given twice in one call keeps its first row, as one-by-one inserts did.
_ITEMS_SQL = f"""INSERT OR IGNORE INTO items
    SELECT ?, item_id, dataset, language, question, gold, metadata_json::JSON
    FROM read_json(?, format='newline_delimited', columns={_columns(_ITEM_FIELDS)})
    QUALIFY row_number() OVER (PARTITION BY item_id ORDER BY ord) = 1"""

_BAD_ROW_FIELDS = {
    "ord": "BIGINT", "object": "VARCHAR", "line": "INTEGER", "field": "VARCHAR",
    "reason": "VARCHAR",
}  # fmt: skip
_INPUT_ERRORS_SQL = f"""INSERT OR IGNORE INTO input_errors
    SELECT ?, object, line, field, reason
    FROM read_json(?, format='newline_delimited', columns={_columns(_BAD_ROW_FIELDS)})
    QUALIFY row_number() OVER (PARTITION BY object, line ORDER BY ord) = 1"""

_RUN_SQL = (
    "INSERT OR IGNORE INTO runs (run_id, created_at, fingerprint, engine, engine_kind, "
    "seed, request_json, versions_json, prompts_json, started_at, status, flow_run_id, "
    "ttscale_version) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'ingested', ?, ?)"
)


def _write_units(path: Path, parts: Iterable[Part]) -> int:
    """Write every part's unit records as one NDJSON file of ``{"source", "unit"}`` lines.

    JSONL bytes are copied line by line, never parsed; parsed records are encoded once each.
    Returns how many records were written.
    """
    written = 0
    with path.open("wb") as out:
        for source, content in parts:
            head = b'{"source":' + json.dumps(source).encode() + b',"unit":'
            if isinstance(content, bytes):
                lines = [line for line in content.splitlines() if line.strip()]
            else:
                lines = [json.dumps(r, ensure_ascii=False).encode() for r in content]
            out.write(b"".join(head + line + b"}\n" for line in lines))
            written += len(lines)
    return written


def _write_ndjson(path: Path, rows: Iterable[dict[str, Any]]) -> None:
    with path.open("w", encoding="utf-8") as out:
        out.writelines(json.dumps(row, ensure_ascii=False) + "\n" for row in rows)


def _run_params(
    *,
    run_id: str,
    fingerprint: str,
    engine: str,
    engine_kind: str,
    seed: int,
    request: dict[str, Any],
    versions: dict[str, Any],
    prompts: dict[str, Any],
    started_at: datetime | None = None,
    flow_run_id: str | None = None,
) -> list[Any]:
    from importlib.metadata import version

    return [
        run_id,
        datetime.now(UTC),
        fingerprint,
        engine,
        engine_kind,
        seed,
        json.dumps(request),
        json.dumps(versions),
        json.dumps(prompts),
        started_at,
        flow_run_id,
        version("ttscale"),
    ]


def _write_items(path: Path, questions: Sequence[Question]) -> None:
    _write_ndjson(
        path,
        (
            {
                "ord": i,
                "item_id": q.id,
                "dataset": q.dataset,
                "language": q.language,
                "question": q.question,
                "gold": q.answer,
                "metadata_json": json.dumps(q.metadata),
            }
            for i, q in enumerate(questions)
        ),
    )


def _write_bad_rows(path: Path, bad_rows: Sequence[BadRow]) -> None:
    _write_ndjson(
        path,
        (
            {"ord": i, "object": b.object, "line": b.line, "field": b.field, "reason": b.reason}
            for i, b in enumerate(bad_rows)
        ),
    )


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

    @contextlib.contextmanager
    def _transaction(self, what: str) -> Iterator[None]:
        """BEGIN … COMMIT; on any error ROLLBACK, so nothing of it is left (LedgerError for SQL)."""
        self.con.execute("BEGIN TRANSACTION")
        try:
            yield
            self.con.execute("COMMIT")
        except BaseException as exc:
            with contextlib.suppress(duckdb.Error):  # a failed COMMIT has already rolled back
                self.con.execute("ROLLBACK")
            if isinstance(exc, duckdb.Error):
                raise LedgerError(f"{what} failed: {exc}") from None
            raise

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
        started_at: datetime | None = None,
        flow_run_id: str | None = None,
    ) -> None:
        """Add the run's row once (status ``ingested``); a resumed run keeps its first row."""
        self.con.execute(
            _RUN_SQL,
            _run_params(
                run_id=run_id,
                fingerprint=fingerprint,
                engine=engine,
                engine_kind=engine_kind,
                seed=seed,
                request=request,
                versions=versions,
                prompts=prompts,
                started_at=started_at,
                flow_run_id=flow_run_id,
            ),
        )

    def finish_run(self, run_id: str, status: str) -> None:
        """Record how the run ended (``completed`` or ``failed``) and when."""
        self.con.execute(
            "UPDATE runs SET status = ?, finished_at = ? WHERE run_id = ?",
            [status, datetime.now(UTC), run_id],
        )

    def add_items(self, run_id: str, questions: Sequence[Question]) -> None:
        """Add a run's items in one bulk insert; an item already there keeps its row."""
        if questions:
            self._ingest((), run_id=run_id, questions=questions)

    def add_input_errors(self, run_id: str, bad_rows: Sequence[BadRow]) -> None:
        """Add a run's bad input rows in one bulk insert; a row already there is kept."""
        if bad_rows:
            self._ingest((), run_id=run_id, bad_rows=bad_rows)

    def ingest_units(self, parts: Iterable[Part]) -> tuple[int, int]:
        """Ingest unit records from shard parts ``(source, records or JSONL bytes)``.

        All of them in one transaction. Returns (units added, calls added); units already in the
        ledger add nothing.
        """
        return self._ingest(parts)

    def ingest_run(
        self,
        run: dict[str, Any],
        questions: Sequence[Question],
        bad_rows: Sequence[BadRow],
        parts: Iterable[Part],
    ) -> tuple[int, int]:
        """Ingest a whole run in one transaction: its row, items, bad rows and every unit.

        ``run`` holds ``record_run``'s keyword arguments; ``parts`` are the shards' part objects
        ``(key, JSONL bytes or records)``, read once as they are iterated. Either all of it lands
        or, on any error, none of it (and a re-run ingests it whole). Idempotent: returns
        (units added, calls added), (0, 0) when the run is already in the ledger.
        """
        return self._ingest(
            parts, run_id=run["run_id"], run=run, questions=questions, bad_rows=bad_rows
        )

    def _ingest(
        self,
        parts: Iterable[Part],
        *,
        run_id: str | None = None,
        run: dict[str, Any] | None = None,
        questions: Sequence[Question] = (),
        bad_rows: Sequence[BadRow] = (),
    ) -> tuple[int, int]:
        with tempfile.TemporaryDirectory(prefix="ttscale-ingest-") as tmp_dir:
            tmp = Path(tmp_dir)
            # Stage everything first (reading the parts may be slow), then one short transaction.
            units_path, items_path, bad_path = tmp / "units.jsonl", tmp / "items.jsonl", tmp / "bad"
            units = _write_units(units_path, parts)
            if questions:
                _write_items(items_path, questions)
            if bad_rows:
                _write_bad_rows(bad_path, bad_rows)
            # Row order does not matter to any of it: let the scans and inserts run in parallel
            # without keeping it (and keep it again for this connection's other queries).
            self.con.execute("SET preserve_insertion_order = false")
            try:
                with self._transaction("ingest"):
                    if run is not None:
                        self.con.execute(_RUN_SQL, _run_params(**run))
                    if questions:
                        self.con.execute(_ITEMS_SQL, [run_id, str(items_path)])
                    if bad_rows:
                        self.con.execute(_INPUT_ERRORS_SQL, [run_id, str(bad_path)])
                    return self._ingest_units_file(units_path) if units else (0, 0)
            finally:
                self.con.execute("RESET preserve_insertion_order")

    def _ingest_units_file(self, units_path: Path) -> tuple[int, int]:
        """Inside the ingest's transaction: add the staged units; returns (units, calls) added."""
        self.con.execute(_INGEST_UNITS_SQL[0], [str(units_path)])
        for statement in _INGEST_UNITS_SQL[1:]:
            self.con.execute(statement)
        row = self.con.execute(_INGEST_COUNTS_SQL).fetchone()
        assert row is not None
        for statement in _INGEST_CLEANUP_SQL:
            self.con.execute(statement)
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
