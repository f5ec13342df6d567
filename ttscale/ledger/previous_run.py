"""The previous run of a run's family, for the policy diff of a scheduled run.

A run's family is its request's ``input_uri`` and strategies (each kind with its budgets and
sampling settings). The engine, seed, run id, prices and placement may differ: tonight's run
with a new model or seed is compared with last week's run of the same questions and strategies.
The previous run is the most recently created *completed* run of the same family in the same
ledger, created no later than the run itself (ties broken by run id), the run itself excluded.

One small read of ``runs`` (``run_id``, ``created_at``, ``status``, ``request_json``); the family
is compared in Python, so the SQL does not depend on how requests are stored.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import duckdb

from ttscale.errors import ConfigError


@dataclass(frozen=True)
class PreviousRun:
    run_id: str
    created_at: datetime


def run_family(request: dict[str, Any]) -> str:
    """The family key of a stored request: its input and its enabled strategies, canonical."""
    stored = request.get("strategies")
    if isinstance(stored, dict):
        strategies = {k: v for k, v in stored.items() if v is not None}
    elif isinstance(stored, list):
        strategies = {c.get("kind"): c for c in stored if isinstance(c, dict)}
    else:
        strategies = {}
    return json.dumps(
        {"input_uri": request.get("input_uri"), "strategies": strategies}, sort_keys=True
    )


def _request(raw: str | None) -> dict[str, Any]:
    value = json.loads(raw) if raw else {}
    return value if isinstance(value, dict) else {}


def previous_run(con: duckdb.DuckDBPyConnection, run_id: str) -> PreviousRun | None:
    """The previous completed run of ``run_id``'s family, or None for the first of its kind.

    Raises ``ConfigError`` if ``run_id`` is not in the ledger.
    """
    row = con.execute(
        "SELECT created_at, CAST(request_json AS VARCHAR) FROM runs WHERE run_id = ?", [run_id]
    ).fetchone()
    if row is None:
        raise ConfigError(f"run {run_id!r} is not in the ledger")
    created_at, family = row[0], run_family(_request(row[1]))
    candidates = con.execute(
        "SELECT run_id, created_at, CAST(request_json AS VARCHAR) FROM runs "
        "WHERE status = 'completed' AND run_id <> ? "
        "AND (created_at < ? OR (created_at = ? AND run_id < ?)) "
        "ORDER BY created_at DESC, run_id DESC",
        [run_id, created_at, created_at, run_id],
    ).fetchall()
    for other_id, other_created, raw in candidates:
        if run_family(_request(raw)) == family:
            return PreviousRun(other_id, other_created)
    return None
