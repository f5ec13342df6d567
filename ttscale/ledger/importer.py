"""Import a ledger from before the lake (one DuckDB file) into the lake: ``ttscale ledger import``.

The old file is checked before anything is opened for writing: a file that is not DuckDB, that
DuckDB cannot read, or whose tables are not a ttscale ledger's is refused (``ConfigError``,
exit 2) and the lake is not touched. Then every run of the file that the lake does not hold yet
is copied in one transaction, which also compares the rows per table and run with the file's
before it commits: a difference rolls everything back (``LedgerError``). A run already in the
lake is skipped whole, so importing the same file twice changes nothing.

Old files are read at any of their schema versions (1–3): columns a version lacked (the run
lifecycle, added in 3) stay NULL. A ``detail_json`` that an early writer encoded twice (a JSON
string holding JSON) is stored decoded.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from pathlib import Path

import duckdb

from ttscale.errors import ConfigError, LedgerError
from ttscale.ledger.lake import retry_lake
from ttscale.ledger.ledger import Ledger
from ttscale.ledger.staging import INGEST_LOCK_SQL

OLD = "old_ledger"
"""The name the old file is attached under, read-only, next to the lake."""

# Each table of the old format, with the columns its first version already had (its key first).
OLD_TABLES: dict[str, tuple[str, ...]] = {
    "runs": ("run_id", "created_at", "fingerprint", "engine", "engine_kind", "seed"),
    "items": ("run_id", "item_id", "dataset", "language", "question", "gold"),
    "generation_calls": (
        "run_id",
        "item_id",
        "strategy",
        "budget",
        "sample_index",
        "call_index",
        "prompt_tokens",
        "completion_tokens",
        "thinking_tokens",
        "answer_tokens",
    ),
    "item_decisions": ("run_id", "item_id", "strategy", "budget", "correct", "stop_reason"),
    "input_errors": ("run_id", "object", "line", "reason"),
}
# An early writer stored json.dumps(detail) into the JSON column: a JSON string holding JSON.
_DETAIL = (
    "CASE WHEN json_type(detail_json) = 'VARCHAR' THEN json(detail_json ->> '$') "
    "ELSE detail_json END"
)


@dataclass(frozen=True)
class ImportResult:
    """What one import did: runs copied, runs the lake already held, rows copied per table."""

    imported_runs: list[str]
    skipped_runs: list[str]
    rows: dict[str, int]


def import_duckdb_ledger(old_file: Path, ledger: str | Path) -> ImportResult:
    """Copy the runs of ``old_file`` (the pre-lake format) that ``ledger`` lacks; see the module."""
    check_old_ledger(old_file)
    with Ledger(ledger) as lake:
        try:
            lake.con.execute(f"ATTACH {_quote(str(old_file))} AS {OLD} (READ_ONLY)")
        except duckdb.Error as exc:
            raise ConfigError(f"{old_file}: cannot be read: {_first_line(exc)}") from None
        try:
            return retry_lake(_copy_new_runs)(lake.con, old_file)
        finally:
            with contextlib.suppress(duckdb.Error):
                lake.con.execute(f"DETACH {OLD}")


def check_old_ledger(old_file: Path) -> None:
    """``ConfigError`` (one line) unless ``old_file`` is a readable pre-lake ttscale ledger."""
    if not old_file.is_file():
        raise ConfigError(f"{old_file}: no such file")
    with old_file.open("rb") as f:
        header = f.read(12)
    if header[8:12] != b"DUCK":
        raise ConfigError(f"{old_file}: not a DuckDB file (no DuckDB header)")
    con = duckdb.connect()
    try:
        con.execute(f"ATTACH {_quote(str(old_file))} AS {OLD} (READ_ONLY)")
        found = _columns(con, OLD)
        for table in set(OLD_TABLES) & set(found):
            # Read every value once: a damaged block fails its checksum here, before the lake
            # is opened, rather than halfway through the copy (count(*) reads no data blocks).
            con.execute(f"SELECT bit_xor(hash(row)) FROM {OLD}.main.{table} AS row").fetchall()
    except duckdb.Error as exc:
        raise ConfigError(
            f"{old_file}: corrupt or unreadable DuckDB file: {_first_line(exc)}"
        ) from None
    finally:
        con.close()
    missing = [t for t in OLD_TABLES if t not in found]
    if missing:
        tables = ", ".join(sorted(found)) or "none"
        raise ConfigError(
            f"{old_file}: not a ttscale ledger: no table {', '.join(missing)} (its tables: {tables})"
        )
    for table, needed in OLD_TABLES.items():
        lacking = [c for c in needed if c not in found[table]]
        if lacking:
            raise ConfigError(
                f"{old_file}: not a ttscale ledger: table {table} has no column {', '.join(lacking)}"
            )


def _copy_new_runs(con: duckdb.DuckDBPyConnection, old_file: Path) -> ImportResult:
    """One transaction: copy the runs the lake lacks, compare the rows, then commit (or roll back)."""
    old_columns, lake_columns = _columns(con, OLD), _columns(con, "lake")
    con.execute("BEGIN TRANSACTION")
    try:
        con.execute(INGEST_LOCK_SQL)  # serialises with ingests and other imports (migration 4)
        run_ids = _old_run_ids(con)
        present = {
            r for (r,) in con.execute(
                " UNION ".join(f"SELECT DISTINCT run_id FROM lake.main.{t}" for t in OLD_TABLES)
            ).fetchall()
        }  # fmt: skip
        new = sorted(set(run_ids) - present)
        rows: dict[str, int] = {}
        for table in OLD_TABLES:
            columns = [c for c in lake_columns[table] if c in old_columns[table]]
            chosen = [_DETAIL if c == "detail_json" else c for c in columns]
            con.execute(
                f"INSERT INTO lake.main.{table} ({', '.join(columns)}) "
                f"SELECT {', '.join(chosen)} FROM {OLD}.main.{table} "
                "WHERE run_id IN (SELECT unnest(?::VARCHAR[]))",
                [new],
            )
            rows[table] = _check_counts(con, table, new, old_file)
        con.execute("COMMIT")
    except BaseException as exc:
        with contextlib.suppress(duckdb.Error):  # a failed COMMIT has already rolled back
            con.execute("ROLLBACK")
        if isinstance(exc, duckdb.Error):
            raise LedgerError(f"import of {old_file} failed: {_first_line(exc)}") from None
        raise
    return ImportResult(new, sorted(present & set(run_ids)), rows)


def _check_counts(
    con: duckdb.DuckDBPyConnection, table: str, run_ids: list[str], old_file: Path
) -> int:
    """The rows per run of ``table`` in the lake equal the file's, for the runs imported now."""
    sql = (
        "SELECT run_id, count(*) FROM {source}.main.{table} "
        "WHERE run_id IN (SELECT unnest(?::VARCHAR[])) GROUP BY run_id"
    )
    old = dict(con.execute(sql.format(source=OLD, table=table), [run_ids]).fetchall())
    lake = dict(con.execute(sql.format(source="lake", table=table), [run_ids]).fetchall())
    if old != lake:
        differ = sorted(r for r in old.keys() | lake.keys() if old.get(r) != lake.get(r))
        run = differ[0]
        raise LedgerError(
            f"import of {old_file} stopped, nothing written: table {table} run {run} has "
            f"{lake.get(run, 0)} rows in the lake, {old.get(run, 0)} in the file"
        )
    return sum(old.values())


def _old_run_ids(con: duckdb.DuckDBPyConnection) -> list[str]:
    union = " UNION ".join(f"SELECT DISTINCT run_id FROM {OLD}.main.{t}" for t in OLD_TABLES)
    return [r for (r,) in con.execute(union).fetchall()]


def _columns(con: duckdb.DuckDBPyConnection, catalog: str) -> dict[str, list[str]]:
    rows = con.execute(
        "SELECT table_name, column_name FROM information_schema.columns "
        "WHERE table_catalog = ? AND table_schema = 'main' ORDER BY table_name, ordinal_position",
        [catalog],
    ).fetchall()
    tables: dict[str, list[str]] = {}
    for table, column in rows:
        tables.setdefault(table, []).append(column)
    return tables


def _quote(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _first_line(exc: BaseException) -> str:
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return lines[0] if lines else type(exc).__name__
