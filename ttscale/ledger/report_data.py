"""One run's report straight from the ledger: read its data, then build (the service's entry point).

Reports never touch the ledger (``tests/test_layers.py``); this module is the one place that
joins the two, so callers with an open connection need a single call.
"""

from __future__ import annotations

import duckdb

from ttscale.ledger.readers import read_report_data
from ttscale.reports.build import build_report
from ttscale.reports.model import Report, ReportSettings


def build_report_from_ledger(
    con: duckdb.DuckDBPyConnection, run_id: str, settings: ReportSettings | None = None
) -> Report:
    """The cost–accuracy report of ``run_id``; raises ``ConfigError`` if the run is unknown."""
    settings = settings or ReportSettings()
    return build_report(read_report_data(con, run_id, settings.decline_examples), settings)
