"""The ledger: a DuckLake (``lake.py``). All of the service's write SQL lives here; report SQL in
report_queries, and the reads that hand plain data to the layers above in readers.

Ingest is bulk and idempotent, and atomic per call, not per unit: one transaction covers
everything one ingest call writes. ``ingest_run`` writes a run's row, items, bad input rows and
every unit (its decision and all its calls) in one transaction, so a reader sees all of a run's
ingest or none of it, and a failed or killed ingest leaves nothing behind to be redone;
``ingest_units`` covers all the parts it is given the same way. A unit
(run, item, strategy, budget) already in the ledger is never added again, and one written more
than once is taken once: a successful attempt over the errored ones it superseded, else the copy
in the part first by name (a zombie worker's duplicate). Decision token totals are summed in SQL
from the unit's own call rows, so they cannot disagree.

Several processes may ingest at once (different runs): a commit that conflicts with another, or
finds the SQLite catalog locked, rolls back and the whole transaction is tried again
(``lake.retry_lake``), which the anti-join makes safe. Reads are retried the same way.

The staging files and the SQL that reads them are in ``staging.py``. Ingest also sets each
run's two costs (``runs.tokens_attributed``, ``runs.tokens_generated``); ``record_report``
writes a published report's figures (``figures.py``), replacing the run's earlier ones.
"""

from __future__ import annotations

import contextlib
import tempfile
from collections.abc import Iterable, Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import duckdb

from ttscale import tempfiles
from ttscale.errors import LedgerError
from ttscale.ledger.figures import encode_rows, figure_rows, insert_sql
from ttscale.ledger.lake import LAKE, connect_lake, parse_ledger, retry_lake
from ttscale.ledger.migrations import MIGRATIONS
from ttscale.ledger.staging import (
    GENERATION_TOTAL_NAMES,
    INGEST_ADDED_SQL,
    INGEST_ADDED_TRACK_SQL,
    INGEST_CHOOSE_SQL,
    INGEST_CLEANUP_SQL,
    INGEST_COUNTS_SQL,
    INGEST_HEAL_SQL,
    INGEST_INSERT_SQL,
    INGEST_LOCK_SQL,
    INGEST_MAY_HEAL_SQL,
    INGEST_REHEALED_SQL,
    INGEST_UNITS_SQL,
    INPUT_ERRORS_SQL,
    ITEMS_FROM_INPUTS_SQL,
    ITEMS_SQL,
    RUN_SQL,
    RUN_TOKENS_SQL,
    Part,
    RunRow,
    StagedBatch,
    StagedFile,
    read_ahead,
    stage_parts,
    write_bad_rows,
    write_items,
)
from ttscale.schemas import BadRow, Question

if TYPE_CHECKING:
    from ttscale.reports.model import Report


class Ledger:
    """The ledger lake named by ``ledger`` (a URI or a local path, see ``lake.parse_ledger``).

    Opened for writing it is migrated first; ``read_only`` attaches it read-only. ``uri`` is the
    setting that opens the same lake again; ``con`` is a DuckDB connection with it in use.
    """

    def __init__(self, ledger: str | Path, *, read_only: bool = False) -> None:
        self.spec = parse_ledger(ledger)
        self.uri = self.spec.uri
        self.con = connect_lake(self.spec, read_only=read_only)
        self.generation_totals: dict[str, int] = dict.fromkeys(GENERATION_TOTAL_NAMES, 0)
        """What the last ingest's part lines say the engine generated (every attempt counted):
        ``calls``, ``calls_cached`` (served from the sample cache), ``tokens_generated``."""
        if not read_only:
            try:
                retry_lake(self.migrate)()
            except BaseException:
                self.con.close()
                raise

    def __enter__(self) -> Ledger:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.con.close()

    def schema_version(self) -> int:
        row = self.con.execute(
            "SELECT count(*) FROM information_schema.tables "
            "WHERE table_name = 'schema_migrations' AND table_catalog = current_database()"
        ).fetchone()
        if not row or not row[0]:
            return 0
        version = self.con.execute("SELECT max(version) FROM schema_migrations").fetchone()
        return int(version[0]) if version and version[0] is not None else 0

    def migrate(self) -> list[str]:
        """Apply every migration newer than the lake's version; returns their names.

        Each migration reads the version and applies itself in one transaction (one snapshot),
        so a process racing another either sees it applied and skips it, or conflicts at commit
        and is retried (``retry_lake``) into seeing it applied.
        """
        applied: list[str] = []
        if self.schema_version() >= MIGRATIONS[-1].version:
            return applied  # the usual case: one catalog read
        for migration in MIGRATIONS:
            with self._transaction(f"migration {migration.name}"):
                if migration.version <= self.schema_version():
                    continue
                self.con.execute(
                    "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER NOT NULL, "
                    "name VARCHAR NOT NULL, applied_at TIMESTAMP NOT NULL)"
                )
                self.con.execute(migration.sql)
                self.con.execute(
                    "INSERT INTO schema_migrations VALUES (?, ?, ?)",
                    [migration.version, migration.name, datetime.now(UTC)],
                )
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

    def merge_files(self) -> None:
        """DuckLake's file upkeep (``ttscale ledger compact``): inlined rows written out to
        Parquet, adjacent small files merged, files with many deleted rows rewritten. The rows
        stay the same. Each step commits alone (DuckLake refuses a transaction that both
        changes rows, as the ingest lock does, and compacts), and is retried on a conflict with
        an ingest that deleted rows of the same files."""

        @retry_lake
        def call(step: str) -> None:
            self.con.execute(f"CALL ducklake_{step}('{LAKE}')").fetchall()

        for step in ("flush_inlined_data", "merge_adjacent_files", "rewrite_data_files"):
            call(step)

    def record_run(self, run: RunRow) -> None:
        """Add the run's row once (status ``ingested``); a resumed run keeps its first row."""
        retry_lake(self.con.execute)(RUN_SQL, run.params())

    def finish_run(self, run_id: str, status: str) -> None:
        """Record how the run ended (``completed`` or ``failed``) and when, and its two costs."""

        def finish() -> None:
            with self._transaction("finishing the run"):
                self.con.execute(
                    "UPDATE runs SET status = ?, finished_at = ? WHERE run_id = ?",
                    [status, datetime.now(UTC), run_id],
                )
                self.con.execute(RUN_TOKENS_SQL, [[run_id]])

        retry_lake(finish)()

    def record_report(self, report: Report) -> dict[str, int]:
        """Write the report's figures (``figures.FIGURE_COLUMNS``' tables) for its run.

        The run's earlier rows in those tables are replaced, all in one transaction (retried on
        conflict, as ingest is), so a re-published report leaves exactly its own figures.
        Returns the rows written per table.
        """
        run_id = report.run.run_id
        rows = figure_rows(report)
        with tempfile.TemporaryDirectory(prefix=tempfiles.prefix("figures")) as tmp_dir:
            staged = {}
            for table, table_rows in rows.items():
                path = Path(tmp_dir) / f"{table}.jsonl"
                path.write_bytes(encode_rows(table_rows))
                staged[table] = path

            def commit() -> None:
                with self._transaction("recording the report's figures"):
                    for table, path in staged.items():
                        self.con.execute(f"DELETE FROM {table} WHERE run_id = ?", [run_id])
                        if rows[table]:
                            self.con.execute(insert_sql(table), [str(path)])

            retry_lake(commit)()
        return {table: len(table_rows) for table, table_rows in rows.items()}

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
        run: RunRow,
        questions: Sequence[Question],
        bad_rows: Sequence[BadRow],
        parts: Iterable[Part],
        *,
        question_parts: Iterable[Part] = (),
    ) -> tuple[int, int]:
        """Ingest a whole run in one transaction: its row, items, bad rows and every unit.

        ``run`` is the run's row; ``parts`` are the shards' part objects
        ``(key, JSONL bytes, local file or records)``, read once as they are iterated. The items
        are ``questions`` and the questions of ``question_parts``, shard input objects as
        ``plan_batch`` wrote them (read by DuckDB, not validated again). Either all of it lands
        or, on any error, none of it (and a re-run ingests it whole). Idempotent: returns
        (units added, calls added), (0, 0) when the run is already in the ledger.
        """
        return self._ingest(
            parts,
            run_id=run.run_id,
            run=run,
            questions=questions,
            question_parts=question_parts,
            bad_rows=bad_rows,
        )

    def _ingest(
        self,
        parts: Iterable[Part],
        *,
        run_id: str | None = None,
        run: RunRow | None = None,
        questions: Sequence[Question] = (),
        question_parts: Iterable[Part] = (),
        bad_rows: Sequence[BadRow] = (),
    ) -> tuple[int, int]:
        self.generation_totals = dict.fromkeys(GENERATION_TOTAL_NAMES, 0)
        with tempfile.TemporaryDirectory(prefix=tempfiles.prefix("ingest")) as tmp_dir:
            tmp = Path(tmp_dir)
            # Stage everything first (reading the parts may be slow), then one short transaction.
            items_path, bad_path = tmp / "items.jsonl", tmp / "bad"
            (tmp / "units").mkdir()
            (tmp / "inputs").mkdir()
            batches = stage_parts(tmp / "units", parts)
            inputs = stage_parts(tmp / "inputs", question_parts, batch_bytes=2**62)
            if questions:
                write_items(items_path, questions)
            if bad_rows:
                write_bad_rows(bad_path, bad_rows)
            # Row order does not matter to any of it: let the scans and inserts run in parallel
            # without keeping it (and keep it again for this connection's other queries).
            self.con.execute("SET preserve_insertion_order = false")
            try:
                return retry_lake(self._commit_ingest)(
                    run_id,
                    run,
                    (items_path if questions else None),
                    (bad_path if bad_rows else None),
                    batches,
                    inputs,
                )
            finally:
                self.con.execute("RESET preserve_insertion_order")

    def _commit_ingest(
        self,
        run_id: str | None,
        run: RunRow | None,
        items_path: Path | None,
        bad_path: Path | None,
        batches: Sequence[StagedBatch],
        inputs: Sequence[StagedBatch] = (),
    ) -> tuple[int, int]:
        """The ingest's one transaction over staged files; whole, so a retry may run it again."""
        with self._transaction("ingest"):
            self.con.execute(INGEST_LOCK_SQL)
            if run is not None:
                self.con.execute(RUN_SQL, run.params())
            if items_path is not None:
                self.con.execute(ITEMS_SQL, [run_id, str(items_path)])
            for batch in inputs:
                with batch.opened() as staged:
                    self._read_staged(staged, ITEMS_FROM_INPUTS_SQL, [run_id])
            if bad_path is not None:
                self.con.execute(INPUT_ERRORS_SQL, [run_id, str(bad_path)])
            runs = {run_id} if run_id is not None else set()
            units = calls = 0
            self.generation_totals = dict.fromkeys(GENERATION_TOTAL_NAMES, 0)
            self.con.execute(INGEST_ADDED_SQL)
            for batch in read_ahead(batches):
                (batch_units, batch_calls), batch_runs = self._ingest_batch(batch)
                units, calls = units + batch_units, calls + batch_calls
                runs |= batch_runs
            self.con.execute("DROP TABLE IF EXISTS ingest_added")
            if runs:
                self.con.execute(RUN_TOKENS_SQL, [sorted(runs)])
            return units, calls

    def _ingest_batch(self, batch: StagedBatch) -> tuple[tuple[int, int], set[str]]:
        """Inside the ingest's transaction: add a batch's units; returns (units, calls) added and
        the runs the batch's units belong to. A unit that an earlier batch of the same ingest
        added is in the ledger by then (the transaction sees its own writes), so it is not added
        twice, and an errored one is healed as from an earlier ingest."""
        with batch.opened() as staged:  # a pipe, fed as DuckDB reads it
            self._read_staged(staged, INGEST_UNITS_SQL)
        replaced: tuple[Any, ...] = (0, 0)
        may_heal = self.con.execute(INGEST_MAY_HEAL_SQL).fetchone()
        if may_heal and may_heal[0]:  # rare: the ledger holds errored units of these runs
            self.con.execute(INGEST_HEAL_SQL[0])
            healed = self.con.execute("SELECT count(*) FROM ingest_healed").fetchone()
            if healed and healed[0]:  # a retry's success; the join below reads the decisions
                replaced = self.con.execute(INGEST_REHEALED_SQL).fetchone() or (0, 0)
                for statement in INGEST_HEAL_SQL[1:]:
                    self.con.execute(statement)
        self.con.execute(INGEST_CHOOSE_SQL)
        counts = self.con.execute(INGEST_COUNTS_SQL).fetchone()
        assert counts is not None
        generated, row = counts[:3], counts[3:]
        for name, value in zip(GENERATION_TOTAL_NAMES, generated, strict=True):
            self.generation_totals[name] += int(value)
        if row[2]:
            raise LedgerError(
                f"ingest failed: {row[2]} call(s) where completion_tokens <> "
                "thinking_tokens + answer_tokens; nothing was written"
            )
        for statement in INGEST_INSERT_SQL:
            self.con.execute(statement)
        self.con.execute(INGEST_ADDED_TRACK_SQL)
        runs = {
            r[0] for r in self.con.execute("SELECT DISTINCT run_id FROM ingest_units").fetchall()
        }
        for statement in INGEST_CLEANUP_SQL:
            self.con.execute(statement)
        return (int(row[0]) - int(replaced[0]), int(row[1]) - int(replaced[1])), runs

    def _read_staged(
        self, staged: StagedFile, template: str, params: Sequence[Any] | None = None
    ) -> None:
        """``template`` run over ``staged``'s file, in its line order (``INGEST_UNITS_SQL``); a
        part that is not what it should be fails the ingest, naming the object and its line."""
        self.con.execute("SET preserve_insertion_order = true")
        try:
            self.con.execute(staged.sql(template), params)
        except duckdb.InvalidInputException as exc:  # not JSONL records of the expected fields
            reason = staged.name_parts(str(exc).strip().splitlines()[0])
            raise LedgerError(f"ingest failed, nothing was written: {reason}") from None
        # The rest of the ingest needs no order (``_ingest`` resets it after a failure).
        self.con.execute("SET preserve_insertion_order = false")

    def query(
        self, sql: str, params: Sequence[Any] | None = None
    ) -> tuple[list[str], list[tuple[Any, ...]]]:
        """Run one statement (retried while the catalog is busy); returns column names and rows."""

        def run() -> tuple[list[str], list[tuple[Any, ...]]]:
            cursor = self.con.execute(sql, list(params or []))
            names = [d[0] for d in cursor.description] if cursor.description else []
            return names, cursor.fetchall()

        try:
            return retry_lake(run)()
        except duckdb.Error as exc:
            raise LedgerError(f"query failed: {exc}") from None
