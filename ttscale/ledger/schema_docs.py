"""What each ledger table and view holds, in one line each: ``ttscale sql --schema`` prints these
with the lake's own columns and types, and the README's "Ledger schema" section must say the same
(``tests/ledger/test_readme_sql.py`` checks both against a migrated lake)."""

from __future__ import annotations

from dataclasses import dataclass

from ttscale.ledger.ledger import Ledger

DESCRIPTIONS: dict[str, str] = {
    # tables
    "runs": "One row per run: request, engine, model, versions, seed, status, start and finish, "
    "tokens attributed to units and tokens generated.",
    "items": "One row per question of a run: dataset, language, question, gold answer.",
    "generation_calls": "One row per generation call, kept or discarded: the only source of "
    "token counts (prompt, completion, thinking, answer; cached, generated_tokens).",
    "item_decisions": "One row per item × strategy × budget: answer, correctness, stop reason, "
    "detail (JSON) and token totals summed from its calls.",
    "input_errors": "One row per bad input row: object, line, field, reason.",
    "reports": "One row per published report: when, its settings (JSON) and λ.",
    "report_curve_points": "The report's curve: per slice × strategy × budget, accuracy and "
    "tokens with bootstrap CIs, USD, and whether it is on the frontier.",
    "report_recommendations": "The report's recommendation per slice and rule (strategy, budget, "
    "accuracy with CI, tokens, USD), or why none is made.",
    "report_saturation": "The report's saturation fits per slice × strategy: F_max, p, ε, N*.",
    "report_inverse_scaling": "The report's inverse-scaling tests per slice × strategy: "
    "significant declines, trend slope and p-values, budget cap.",
    "schema_migrations": "The ledger's applied schema migrations, by version.",
    "ingest_lock": "One row every ingest updates first, so overlapping ingests take turns.",
    # views
    "item_spend": "View: token spend per run × item × strategy × budget, summed from the calls.",
    "cost_accuracy": "View: per run × dataset × language × strategy × budget, accuracy and mean "
    "and total tokens (every decision).",
    "run_summary": "View: one line per run (what `ttscale runs` prints): status, duration, "
    "items, units, tokens, sweep saving, accuracy.",
    "latest_run": "View: the run_id of the most recently started run.",
    "accuracy_by_budget": "View: per run × strategy × budget, accuracy and tokens of the answered "
    "units.",
    "accuracy_by_language": "View: per run × language × strategy × budget, accuracy and tokens of "
    "the answered units.",
    "cost_per_correct": "View: per run × dataset × language × strategy × budget, completion "
    "tokens per correct answer.",
}
"""One line per ledger table and view (views say so first)."""

_COLUMNS_SQL = """
SELECT c.table_name, t.table_type, c.column_name, c.data_type
FROM information_schema.columns c
JOIN information_schema.tables t
  ON t.table_catalog = c.table_catalog AND t.table_schema = c.table_schema
     AND t.table_name = c.table_name
WHERE c.table_catalog = current_database() AND c.table_schema = current_schema()
ORDER BY t.table_type, c.table_name, c.ordinal_position
"""


@dataclass(frozen=True)
class LedgerObject:
    """A table or view of the ledger with its columns ``(name, type)`` and its description."""

    name: str
    kind: str
    """``table`` or ``view``."""
    description: str
    columns: list[tuple[str, str]]


def ledger_objects(ledger: Ledger) -> list[LedgerObject]:
    """Every table then every view of the open ledger, as the lake declares them."""
    _, rows = ledger.query(_COLUMNS_SQL)
    found: dict[str, LedgerObject] = {}
    for table, table_type, column, data_type in rows:
        if table not in found:
            kind = "view" if "VIEW" in str(table_type).upper() else "table"
            description = DESCRIPTIONS.get(table, "(no description)")
            found[table] = LedgerObject(table, kind, description, [])
        found[table].columns.append((column, data_type))
    return list(found.values())
