"""How tests read a ledger the service wrote: the way a user's own DuckDB session would."""

from __future__ import annotations

from pathlib import Path

import duckdb

from ttscale.ledger.lake import connect_lake


def open_ledger(ledger: str | Path) -> duckdb.DuckDBPyConnection:
    """The ledger lake at ``ledger`` (a path or a ``ducklake:`` URI), attached read-only and in
    use, so ``SELECT … FROM item_decisions`` works as it did on the single-file ledger."""
    return connect_lake(ledger, read_only=True)
