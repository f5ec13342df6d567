"""Several runs' reports from one ledger, for ``ttscale compare`` (``reports/compare.py``).

Each run is read exactly as its own report is (``report_data.build_report_from_ledger``, with
the prices and cutoffs stored with that run), so a comparison shows each run's own figures.
"""

from __future__ import annotations

from collections.abc import Sequence

import duckdb

from ttscale.errors import ConfigError
from ttscale.ledger.report_data import build_report_from_ledger
from ttscale.reports.model import Report


def reports_for_runs(con: duckdb.DuckDBPyConnection, run_ids: Sequence[str]) -> list[Report]:
    """Each run's report, in the order given; ``ConfigError`` names the first unknown run."""
    known = {row[0] for row in con.execute("SELECT run_id FROM runs").fetchall()}
    for run_id in run_ids:
        if run_id not in known:
            raise ConfigError(f"run {run_id!r} is not in the ledger")
    return [build_report_from_ledger(con, run_id) for run_id in run_ids]


def latest_run_ids(con: duckdb.DuckDBPyConnection, count: int) -> list[str]:
    """The ``count`` most recently created runs, oldest first (e.g. last week's, then tonight's)."""
    rows = con.execute(
        "SELECT run_id FROM runs ORDER BY created_at DESC, run_id DESC LIMIT ?", [count]
    ).fetchall()
    return [row[0] for row in reversed(rows)]
