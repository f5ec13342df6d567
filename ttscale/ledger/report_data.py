"""One run's report straight from the ledger: read its data, then build (the service's entry point).

Reports never touch the ledger (``tests/test_layers.py``); this module is the one place that
joins the two, so callers with an open connection need a single call.
"""

from __future__ import annotations

import json
from typing import Any

import duckdb
from pydantic import ValidationError

from ttscale.errors import ConfigError
from ttscale.ledger.lake import retry_lake
from ttscale.ledger.readers import read_report_data
from ttscale.reports.build import build_report
from ttscale.reports.model import Report, ReportSettings
from ttscale.schemas import ReportOptions


def stored_report_options(con: duckdb.DuckDBPyConnection, run_id: str) -> ReportOptions:
    """The report options stored with the run's request (unset when it has none)."""
    row = con.execute(
        "SELECT CAST(request_json AS VARCHAR) FROM runs WHERE run_id = ?", [run_id]
    ).fetchone()
    if row is None:
        raise ConfigError(f"run {run_id!r} is not in the ledger")
    request = json.loads(row[0]) if row[0] else {}
    options = request.get("report") if isinstance(request, dict) else None
    try:
        return ReportOptions.model_validate(options or {})
    except ValidationError:
        return ReportOptions()  # an older request: report with defaults


def report_settings(
    options: ReportOptions, overrides: dict[str, Any] | None = None
) -> ReportSettings:
    """``ReportSettings`` from a request's report options, then ``overrides`` (unset ones skipped)."""
    update = options.settings_update()
    update |= ReportOptions(
        **{k: v for k, v in (overrides or {}).items() if v is not None}
    ).settings_update()
    return ReportSettings(**update)


def build_report_from_ledger(
    con: duckdb.DuckDBPyConnection, run_id: str, settings: ReportSettings | None = None
) -> Report:
    """The cost–accuracy report of ``run_id``; raises ``ConfigError`` if the run is unknown.

    Without ``settings``, the prices and cutoffs stored with the run's request are used.
    """
    # Only reads: retried whole while a SQLite catalog is busy with other runs' writers.
    settings = settings or retry_lake(lambda: report_settings(stored_report_options(con, run_id)))()
    data = retry_lake(read_report_data)(con, run_id, settings.decline_examples)
    return build_report(data, settings)
