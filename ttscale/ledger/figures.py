"""A published report's figures as ledger rows (the ``report_*`` tables of migration 5).

``figure_rows`` turns a ``Report`` into plain rows, one list per table; ``Ledger.record_report``
stages them as NDJSON and replaces the run's rows in one transaction, so a re-published report
leaves exactly its own figures. Columns are read by name, so each table's columns are listed
once here, with the types ``read_json`` reads them as.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from ttscale.reports.model import Report, SliceReport

FIGURE_COLUMNS: dict[str, dict[str, str]] = {
    "reports": {
        "run_id": "VARCHAR", "published_at": "TIMESTAMP", "generated_at": "VARCHAR",
        "report_schema_version": "INTEGER", "lambda_per_1k_tokens": "DOUBLE",
        "throughput_tokens_per_second": "DOUBLE", "settings_json": "JSON",
    },
    "report_curve_points": {
        "run_id": "VARCHAR", "dataset": "VARCHAR", "language": "VARCHAR", "strategy": "VARCHAR",
        "budget": "INTEGER", "items": "INTEGER", "correct": "INTEGER", "accuracy": "DOUBLE",
        "accuracy_low": "DOUBLE", "accuracy_high": "DOUBLE", "mean_completion_tokens": "DOUBLE",
        "completion_tokens_low": "DOUBLE", "completion_tokens_high": "DOUBLE",
        "mean_prompt_tokens": "DOUBLE", "mean_thinking_tokens": "DOUBLE",
        "usd_per_item": "DOUBLE", "usd_per_correct": "DOUBLE", "on_frontier": "BOOLEAN",
    },
    "report_recommendations": {
        "run_id": "VARCHAR", "dataset": "VARCHAR", "language": "VARCHAR", "rule": "VARCHAR",
        "strategy": "VARCHAR", "budget": "INTEGER", "accuracy": "DOUBLE",
        "accuracy_low": "DOUBLE", "accuracy_high": "DOUBLE", "mean_completion_tokens": "DOUBLE",
        "usd_per_item": "DOUBLE", "threshold": "DOUBLE", "plateau_reached": "BOOLEAN",
        "capped_by_decline": "BOOLEAN", "withheld": "VARCHAR", "needed": "VARCHAR",
    },
    "report_saturation": {
        "run_id": "VARCHAR", "dataset": "VARCHAR", "language": "VARCHAR", "strategy": "VARCHAR",
        "kind": "VARCHAR", "unit": "VARCHAR", "f_max": "DOUBLE", "p": "DOUBLE",
        "epsilon": "DOUBLE", "saturation_point": "DOUBLE", "extrapolated": "BOOLEAN",
        "budgets": "INTEGER[]", "deviance": "DOUBLE",
    },
    "report_inverse_scaling": {
        "run_id": "VARCHAR", "dataset": "VARCHAR", "language": "VARCHAR", "strategy": "VARCHAR",
        "cap_budget": "INTEGER", "significant_declines": "INTEGER",
        "trend_token_measure": "VARCHAR", "trend_slope_points_per_1k_tokens": "DOUBLE",
        "trend_p_value": "DOUBLE", "trend_p_holm": "DOUBLE", "trend_significant": "BOOLEAN",
        "pairwise_json": "JSON",
    },
}  # fmt: skip
"""Each figure table's columns and their ``read_json`` types, in table order."""


def insert_sql(table: str) -> str:
    """The INSERT of ``table``'s rows from a staged NDJSON file (the one ``?``), by column name."""
    columns = FIGURE_COLUMNS[table]
    literal = ", ".join(f"'{name}': '{kind}'" for name, kind in columns.items())
    return (
        f"INSERT INTO {table} ({', '.join(columns)}) SELECT * FROM "
        f"read_json(?, format='newline_delimited', columns={{{literal}}})"
    )


def figure_rows(report: Report) -> dict[str, list[dict[str, Any]]]:
    """The rows of every ``report_*`` table (and ``reports``) for ``report``'s run."""
    run_id = report.run.run_id
    rows: dict[str, list[dict[str, Any]]] = {table: [] for table in FIGURE_COLUMNS}
    rows["reports"].append({
        "run_id": run_id,
        "published_at": datetime.now(UTC).replace(tzinfo=None).isoformat(),
        "generated_at": report.generated_at,
        "report_schema_version": report.schema_version,
        "lambda_per_1k_tokens": report.lambda_per_1k_tokens,
        "throughput_tokens_per_second": report.measured_throughput_tokens_per_second,
        "settings_json": report.settings.model_dump(mode="json"),
    })  # fmt: skip
    for piece in report.slices:
        where = {"run_id": run_id, "dataset": piece.dataset, "language": piece.language}
        rows["report_curve_points"] += _curve_rows(piece, where)
        rows["report_recommendations"] += _recommendation_rows(piece, where)
        rows["report_saturation"] += [
            where | fit.model_dump(mode="json") for fit in piece.saturation
        ]
        rows["report_inverse_scaling"] += [
            where
            | {
                "strategy": finding.strategy,
                "cap_budget": finding.cap_budget,
                "significant_declines": sum(test.significant for test in finding.pairwise),
                "trend_token_measure": finding.trend.token_measure if finding.trend else None,
                "trend_slope_points_per_1k_tokens": (
                    finding.trend.slope_points_per_1k_tokens if finding.trend else None
                ),
                "trend_p_value": finding.trend.p_value if finding.trend else None,
                "trend_p_holm": finding.trend.p_holm if finding.trend else None,
                "trend_significant": finding.trend.significant if finding.trend else None,
                "pairwise_json": [test.model_dump(mode="json") for test in finding.pairwise],
            }
            for finding in piece.inverse_scaling
        ]
    return rows


def _curve_rows(piece: SliceReport, where: dict[str, Any]) -> list[dict[str, Any]]:
    frontier = {tuple(config) for config in piece.frontier_configs}
    columns = FIGURE_COLUMNS["report_curve_points"]
    return [
        where
        | {k: v for k, v in point.model_dump(mode="json").items() if k in columns}
        | {"on_frontier": (point.strategy, point.budget) in frontier}
        for point in piece.curves
    ]


def _recommendation_rows(piece: SliceReport, where: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per rule's recommendation; one row naming the reason when there is none."""
    if not piece.recommendations:
        reason = piece.withheld or "no recommendation"
        return [where | {"withheld": reason, "needed": piece.needed}]
    points = {(p.strategy, p.budget): p for p in piece.curves}
    out = []
    for rec in piece.recommendations:
        point = points.get((rec.strategy, rec.budget))
        out.append(
            where
            | {
                "rule": rec.rule,
                "strategy": rec.strategy,
                "budget": rec.budget,
                "accuracy": rec.accuracy,
                "accuracy_low": point.accuracy_low if point else None,
                "accuracy_high": point.accuracy_high if point else None,
                "mean_completion_tokens": rec.mean_completion_tokens,
                "usd_per_item": rec.usd_per_item,
                "threshold": rec.threshold,
                "plateau_reached": rec.plateau_reached,
                "capped_by_decline": rec.capped_by_decline,
            }
        )
    return out


def encode_rows(rows: list[dict[str, Any]]) -> bytes:
    """NDJSON of ``rows`` (non-finite floats as null: JSON has no NaN)."""
    return "".join(json.dumps(_finite(row), ensure_ascii=False) + "\n" for row in rows).encode()


def _finite(value: Any) -> Any:
    if isinstance(value, float) and (value != value or value in (float("inf"), float("-inf"))):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_finite(v) for v in value]
    return value
