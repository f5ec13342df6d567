"""Run SQL a user typed against the ledger: read-only, one statement, no file or network access.

Two layers, both DuckDB's own:

1. The connection. The ledger lake is attached read-only (``lake.connect_lake``: its extensions
   are loaded from their packages first) with extension auto-install, auto-load and community
   extensions off; then ``enable_external_access`` goes off (no file or network access from SQL:
   ``COPY``, ``ATTACH``, ``read_csv``/``read_text``/``glob``..., ``INSTALL``, replacement scans)
   with only the lake's own files (catalog file, data folder, and any ``allowed_directories``
   given) still readable, and ``lock_configuration`` goes on, so no later ``SET`` can undo it.
2. The statement. DuckDB's parser (``duckdb.extract_statements``) splits the text: exactly one
   statement, and only a SELECT-like one (SELECT, WITH, FROM, VALUES, TABLE, SHOW, DESCRIBE,
   SUMMARIZE, PIVOT, EXPLAIN of those, and a few reading PRAGMAs) is run.

Anything else raises ``SqlRefusedError`` (exit 2) naming what was refused; a statement DuckDB
cannot parse or run stays a ``LedgerError`` (exit 7, "query failed").
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb

from ttscale.errors import LedgerError, SqlRefusedError
from ttscale.ledger.lake import connect_lake, parse_ledger, retry_lake

RULE = "read-only: one SELECT-like statement on the ledger"

_CONNECT_CONFIG = {
    "autoinstall_known_extensions": False,
    "autoload_known_extensions": False,
    "allow_community_extensions": False,
}
# PRAGMAs that only read the catalog (anything with ``=`` parses as SET and is refused).
_READING_PRAGMAS = frozenset({
    "show_tables", "show_tables_expanded", "table_info", "show", "database_list",
    "database_size", "storage_info", "version", "platform", "functions", "collations",
})  # fmt: skip
# First words of a PIVOT that DuckDB parses as several statements (MULTI) but only reads.
_READING_MULTI_STARTS = frozenset({"PIVOT", "UNPIVOT", "SELECT", "WITH", "FROM", "(", "VALUES"})
_LABEL_WORDS = 3
_LABEL_SKIP = frozenset({"OR", "REPLACE", "TEMP", "TEMPORARY", "IF", "NOT", "EXISTS", "PERSISTENT"})


def open_sandboxed(
    path: str | Path, allowed_directories: Sequence[str | Path] = ()
) -> duckdb.DuckDBPyConnection:
    """The ledger lake ``path`` (a path or URI), read-only, with external access off and the
    configuration locked.

    ``allowed_directories`` stay readable from SQL (e.g. a data folder beside the ledger).
    """
    spec = parse_ledger(path)
    con = connect_lake(spec, read_only=True, config=dict(_CONNECT_CONFIG))
    try:
        # allowed_* can only be set while external access is still on, and before the lock. The
        # lake reads its catalog and Parquet files through them; nothing else is reachable.
        if spec.catalog_file is not None:
            con.execute("SET allowed_paths = ?", [[str(spec.catalog_file)]])
        dirs = [str(Path(d).resolve()) + "/" for d in allowed_directories]
        if spec.data_path:
            dirs.append(spec.data_path)
        con.execute("SET allowed_directories = ?", [dirs])
        con.execute("SET enable_external_access = false")
        con.execute("SET lock_configuration = true")
    except BaseException:
        con.close()
        raise
    return con


def check_statement(sql: str) -> duckdb.Statement | str:
    """The one statement in ``sql`` if it only reads; else ``SqlRefusedError``.

    DuckDB 1.5 parses some single statements as several (PIVOT: CREATE TYPE then SELECT; COPY FROM
    DATABASE: a transaction of copies). Such a text is one statement as typed: a PIVOT is returned
    as the text itself (run whole), anything else is refused by its leading keywords.

    Text DuckDB cannot parse is a ``LedgerError`` ("query failed"), as any failed query.
    """
    words = _words(sql)
    if any(words[i : i + 2] == ["IMPORT", "DATABASE"] for i in range(len(words))):
        # DuckDB 1.5's parser itself reads DIR/schema.sql and load.sql of an IMPORT DATABASE:
        # refuse it from the tokens, before anything parses it.
        raise _refused("IMPORT DATABASE")
    try:
        statements = duckdb.extract_statements(sql)
    except duckdb.Error as exc:
        raise LedgerError(f"query failed: {_first_line(exc)}") from None
    if not statements:
        raise SqlRefusedError(f"refused: no SQL statement given ({RULE})")
    if len(statements) > 1 and _typed_statements(sql) == 1:
        words = _words(sql)
        if words and words[0] in ("PIVOT", "UNPIVOT"):
            return sql
        raise _refused(_label(sql))
    if len(statements) > 1:
        raise SqlRefusedError(
            f"refused: {len(statements)} statements given; ttscale sql runs exactly one ({RULE})"
        )
    statement = statements[0]
    try:
        reads_only = _reads_only(statement)
    except ValueError:  # a statement type the Python client has no name for (UPDATE EXTENSIONS)
        reads_only = False
    if not reads_only:
        raise _refused(_label(statement.query))
    return statement


@dataclass(frozen=True)
class UserResult:
    """A user statement's result: column names, their DuckDB types (as SQL text) and rows."""

    names: list[str]
    types: list[str]
    rows: list[tuple[Any, ...]]


def run_user_sql(
    path: str | Path, sql: str, allowed_directories: Sequence[str | Path] = ()
) -> tuple[list[str], list[tuple[Any, ...]]]:
    """Check and run one user statement on the sandboxed ledger; returns column names and rows."""
    result = run_user_query(path, sql, allowed_directories)
    return result.names, result.rows


def run_user_query(
    path: str | Path, sql: str, allowed_directories: Sequence[str | Path] = ()
) -> UserResult:
    """``run_user_sql`` with the result's column types too (to write it typed, e.g. Parquet)."""
    statement = check_statement(sql)
    con = open_sandboxed(path, allowed_directories)

    def run() -> UserResult:
        cursor = con.execute(statement)
        rows = cursor.fetchall()
        described = cursor.description or []
        return UserResult([d[0] for d in described], [str(d[1]) for d in described], rows)

    try:
        try:
            # A SQLite catalog busy with a writer's commit answers "database is locked": retried.
            return retry_lake(run)()
        except duckdb.PermissionException as exc:
            raise SqlRefusedError(
                f"refused: file, network and extension access is not allowed in ttscale sql "
                f"({RULE}): {_first_line(exc).removeprefix('Permission Error: ')}"
            ) from None
        except duckdb.Error as exc:
            if "configuration has been locked" in str(exc):
                raise SqlRefusedError(
                    f"refused: settings cannot be changed in ttscale sql ({RULE})"
                ) from None
            raise LedgerError(f"query failed: {_first_line(exc)}") from None
    finally:
        con.close()


def _reads_only(statement: duckdb.Statement) -> bool:
    kind = statement.type
    if kind == duckdb.StatementType.SELECT:
        return True
    words = _words(statement.query)
    if kind == duckdb.StatementType.PRAGMA:
        # IMPORT DATABASE and COPY FROM DATABASE parse as PRAGMA too: check it is one by name.
        return (
            len(words) > 1
            and words[0] == "PRAGMA"
            and words[1].strip('"').lower() in _READING_PRAGMAS
        )
    if kind == duckdb.StatementType.MULTI:
        return bool(words) and words[0] in _READING_MULTI_STARTS
    if kind == duckdb.StatementType.EXPLAIN:
        inner = _explained(statement.query)
        if inner is None:
            return False
        try:
            explained = duckdb.extract_statements(inner)
        except (duckdb.Error, ValueError):
            return False
        return len(explained) == 1 and _reads_only(explained[0])
    return False


def _tokens(sql: str) -> list[tuple[int, str, str]]:
    """(start, type name, text) of each token but comments, from DuckDB's tokenizer."""
    tokens = duckdb.tokenize(sql)
    out = []
    for i, (start, kind) in enumerate(tokens):
        end = tokens[i + 1][0] if i + 1 < len(tokens) else len(sql)
        name = str(getattr(kind, "name", kind))
        if name != "comment":
            out.append((start, name, sql[start:end].strip()))
    return out


def _typed_statements(sql: str) -> int:
    """How many statements the text holds as typed: non-empty runs of tokens between ``;``."""
    count, current = 0, 0
    for _, _, text in _tokens(sql):
        if text == ";":
            count, current = count + (current > 0), 0
        else:
            current += 1
    return count + (current > 0)


def _words(sql: str) -> list[str]:
    """The statement's tokens, keywords upper-cased."""
    return [text.upper() if kind == "keyword" else text for _, kind, text in _tokens(sql)]


def _explained(sql: str) -> str | None:
    """The statement after ``EXPLAIN [ANALYZE] [(options)]``, or None."""
    tokens = _tokens(sql)
    if not tokens or tokens[0][2].upper() != "EXPLAIN":
        return None
    i = 1
    if i < len(tokens) and tokens[i][2].upper() in ("ANALYZE", "ANALYSE"):
        i += 1
    if i < len(tokens) and tokens[i][2] == "(":
        depth = 0
        while i < len(tokens):
            depth += tokens[i][2].count("(") - tokens[i][2].count(")")
            i += 1
            if depth <= 0:
                break
    return sql[tokens[i][0] :] if i < len(tokens) else None


def _label(sql: str) -> str:
    """What the statement is, for the message: its leading keywords (``COPY``, ``CREATE SECRET``)."""
    label: list[str] = []
    for _, kind, text in _tokens(sql):
        if kind != "keyword" or len(label) == _LABEL_WORDS:
            break
        if text.upper() not in _LABEL_SKIP:
            label.append(text.upper())
    return " ".join(label) or "this"


def _refused(label: str) -> SqlRefusedError:
    return SqlRefusedError(f"refused: {label} statements are not allowed in ttscale sql ({RULE})")


def _first_line(exc: BaseException) -> str:
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return lines[0] if lines else type(exc).__name__
