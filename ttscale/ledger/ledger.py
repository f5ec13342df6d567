"""The DuckDB ledger. All of the service's write SQL lives here; report SQL in report_queries, and
the reads that hand plain data to the layers above in readers.

Ingest is bulk and idempotent, and atomic per call, not per unit: one transaction covers
everything one ingest call writes. ``ingest_run`` writes a run's row, items, bad input rows and
every unit (its decision and all its calls) in one transaction, so a reader sees all of a run's
ingest or none of it, and a failed or killed ingest leaves nothing behind to be redone;
``ingest_units`` covers all the parts it is given the same way. A unit
(run, item, strategy, budget) already in the ledger is never added again, and one written more
than once is taken once: a successful attempt over the errored ones it superseded, else the copy
in the part first by name (a zombie worker's duplicate). Decision token totals are summed in SQL
from the unit's own call rows, so they cannot disagree.

The staging files and the SQL that reads them are in ``staging.py``.
"""

from __future__ import annotations

import contextlib
import tempfile
from collections.abc import Iterable, Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb

from ttscale import tempfiles
from ttscale.errors import LedgerError
from ttscale.ledger.migrations import MIGRATIONS
from ttscale.ledger.staging import (
    INGEST_CLEANUP_SQL,
    INGEST_COUNTS_SQL,
    INGEST_UNITS_SQL,
    INPUT_ERRORS_SQL,
    ITEMS_SQL,
    RUN_SQL,
    Part,
    RunRow,
    write_bad_rows,
    write_items,
    write_units,
)
from ttscale.schemas import BadRow, Question


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

    def record_run(self, run: RunRow) -> None:
        """Add the run's row once (status ``ingested``); a resumed run keeps its first row."""
        self.con.execute(RUN_SQL, run.params())

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
        run: RunRow,
        questions: Sequence[Question],
        bad_rows: Sequence[BadRow],
        parts: Iterable[Part],
    ) -> tuple[int, int]:
        """Ingest a whole run in one transaction: its row, items, bad rows and every unit.

        ``run`` is the run's row; ``parts`` are the shards' part objects
        ``(key, JSONL bytes or records)``, read once as they are iterated. Either all of it lands
        or, on any error, none of it (and a re-run ingests it whole). Idempotent: returns
        (units added, calls added), (0, 0) when the run is already in the ledger.
        """
        return self._ingest(
            parts, run_id=run.run_id, run=run, questions=questions, bad_rows=bad_rows
        )

    def _ingest(
        self,
        parts: Iterable[Part],
        *,
        run_id: str | None = None,
        run: RunRow | None = None,
        questions: Sequence[Question] = (),
        bad_rows: Sequence[BadRow] = (),
    ) -> tuple[int, int]:
        with tempfile.TemporaryDirectory(prefix=tempfiles.prefix("ingest")) as tmp_dir:
            tmp = Path(tmp_dir)
            # Stage everything first (reading the parts may be slow), then one short transaction.
            units_path, items_path, bad_path = tmp / "units.jsonl", tmp / "items.jsonl", tmp / "bad"
            units = write_units(units_path, parts)
            if questions:
                write_items(items_path, questions)
            if bad_rows:
                write_bad_rows(bad_path, bad_rows)
            # Row order does not matter to any of it: let the scans and inserts run in parallel
            # without keeping it (and keep it again for this connection's other queries).
            self.con.execute("SET preserve_insertion_order = false")
            try:
                with self._transaction("ingest"):
                    if run is not None:
                        self.con.execute(RUN_SQL, run.params())
                    if questions:
                        self.con.execute(ITEMS_SQL, [run_id, str(items_path)])
                    if bad_rows:
                        self.con.execute(INPUT_ERRORS_SQL, [run_id, str(bad_path)])
                    return self._ingest_units_file(units_path) if units else (0, 0)
            finally:
                self.con.execute("RESET preserve_insertion_order")

    def _ingest_units_file(self, units_path: Path) -> tuple[int, int]:
        """Inside the ingest's transaction: add the staged units; returns (units, calls) added."""
        self.con.execute(INGEST_UNITS_SQL[0], [str(units_path)])
        for statement in INGEST_UNITS_SQL[1:]:
            self.con.execute(statement)
        row = self.con.execute(INGEST_COUNTS_SQL).fetchone()
        assert row is not None
        for statement in INGEST_CLEANUP_SQL:
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
