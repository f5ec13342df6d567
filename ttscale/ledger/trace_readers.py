"""Stored thinking traces of one unit, for probing them offline (``ttscale replay-probes``).

A trace is the text of a unit's first sample's "thinking" calls, in call order: what budget
forcing or a probed strategy generated before its answer was forced. Extensions (budget
forcing's "Wait") are left out: the forced "Wait" itself was never generated, so their text
does not continue the thinking token for token.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ttscale.errors import ConfigError
from ttscale.ledger.ledger import Ledger

STORED_TRACES_SQL = """
SELECT d.item_id, i.dataset, i.language, i.question, i.gold, d.stop_reason,
       CAST(d.detail_json AS VARCHAR) AS detail_json,
       coalesce(string_agg(c.completion_text, '' ORDER BY c.call_index), '') AS thinking_text
FROM item_decisions d
JOIN items i USING (run_id, item_id)
LEFT JOIN generation_calls c
       ON c.run_id = d.run_id AND c.item_id = d.item_id AND c.strategy = d.strategy
      AND c.budget = d.budget AND c.sample_index = 0 AND c.phase = 'thinking'
WHERE d.run_id = ? AND d.strategy = ? AND d.budget = ? AND d.stop_reason <> 'error'
GROUP BY d.item_id, i.dataset, i.language, i.question, i.gold, d.stop_reason, d.detail_json
ORDER BY d.item_id
"""

RUN_REQUEST_SQL = "SELECT CAST(request_json AS VARCHAR) FROM runs WHERE run_id = ?"


def stored_traces(
    ledger: str | Path, run_id: str, strategy: str, budget: int
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The run's stored request and the traces of its unit (``strategy``, ``budget``), one dict
    per answered item. Raises ``ConfigError`` for an unknown run or a unit with no traces."""
    with Ledger(ledger, read_only=True) as opened:
        _, request_rows = opened.query(RUN_REQUEST_SQL, [run_id])
        if not request_rows:
            raise ConfigError(f"run {run_id!r} is not in the ledger")
        names, values = opened.query(STORED_TRACES_SQL, [run_id, strategy, budget])
    rows = [dict(zip(names, v, strict=True)) for v in values]
    if not rows:
        raise ConfigError(f"run {run_id!r} has no answered units {strategy}@{budget}")
    for row in rows:
        row["detail"] = json.loads(row.pop("detail_json") or "{}")
    request = json.loads(request_rows[0][0]) if request_rows[0][0] else {}
    return request, rows
