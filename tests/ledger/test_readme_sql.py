"""The README's SQL examples run as written through `ttscale sql`, and each answers for one run.

A ledger holds two real runs (scripted engine, published reports); every ```sql block of the
README must succeed there and return exactly what it returns on a ledger holding only the newer
run, so a block that forgets to filter by run (and mixes both) fails. The README's "Ledger
schema" table must say what ``ttscale sql --schema`` says, for every table and view of the lake.
"""

from __future__ import annotations

import json
import random
import re
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from ttscale.cli import app
from ttscale.ledger import Ledger
from ttscale.ledger.schema_docs import DESCRIPTIONS, ledger_objects
from ttscale.schemas import BatchRequest
from ttscale.service import resolve_run, run_batch

README = Path(__file__).resolve().parents[2] / "README.md"
STRATEGIES = [
    {"kind": "majority", "n": [1, 2, 4]},
    {"kind": "budget_forcing", "budgets_tokens": [8, 16, 32]},
]
OLDER_ITEMS, NEWER_ITEMS = 30, 24
runner = CliRunner()


def readme_sql_blocks(text: str) -> list[str]:
    return [block.strip() for block in re.findall(r"```sql\n(.*?)```", text, flags=re.DOTALL)]


def _questions(path: Path, count: int, seed: int) -> str:
    rng = random.Random(seed)
    rows = []
    for i in range(count):
        a, b = rng.randint(2, 90), rng.randint(2, 90)
        language = "de" if i % 3 == 0 else "en"
        rows.append({"id": f"q{i:04d}", "question": f"What is {a} plus {b}?", "answer": str(a + b),
                     "language": language})  # fmt: skip
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return str(path)


def _run(tmp: Path, ledger: Path, run_id: str, items: int, seed: int) -> None:
    request = BatchRequest.model_validate(
        {
            "input_uri": _questions(tmp / f"{run_id}-{ledger.stem}.jsonl", items, seed),
            "output_uri": f"file://{tmp}/out-{ledger.stem}",
            "ledger_path": str(ledger),
            "run_id": run_id,
            "engine": {"kind": "scripted", "accuracy": 0.6},
            "strategies": STRATEGIES,
            "report": {"min_items": 5},
            "seed": seed,
        }
    )
    run_batch(resolve_run(request))


@pytest.fixture(scope="module")
def ledgers(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str]:
    """(a ledger with runs "older" then "newer", a ledger with the same "newer" run alone)."""
    tmp = tmp_path_factory.mktemp("readme-sql")
    both, alone = tmp / "both.sqlite", tmp / "alone.sqlite"
    _run(tmp, both, "older", OLDER_ITEMS, seed=1)
    _run(tmp, both, "newer", NEWER_ITEMS, seed=2)
    _run(tmp, alone, "newer", NEWER_ITEMS, seed=2)
    return str(both), str(alone)


def _sql(ledger: str, query: str) -> list[dict[str, Any]]:
    result = runner.invoke(app, ["sql", query, "--ledger", ledger, "--format", "json"])
    assert result.exit_code == 0, f"{query}\n{result.output}"
    rows: list[dict[str, Any]] = json.loads(result.stdout)
    return rows


def test_the_readme_has_sql_examples_and_each_filters_by_run() -> None:
    blocks = readme_sql_blocks(README.read_text())
    assert len(blocks) >= 8
    for block in blocks:
        assert "latest_run" in block, block


@pytest.mark.parametrize("block", readme_sql_blocks(README.read_text()))
def test_a_readme_example_runs_as_written_and_answers_for_the_newest_run_only(
    ledgers: tuple[str, str], block: str
) -> None:
    both, alone = ledgers
    rows = _sql(both, block)
    assert rows, f"no rows: {block}"
    # The same answer as on a ledger that never held the older run.
    assert rows == _sql(alone, block)
    for row in rows:
        assert row.get("run_id", "newer") == "newer"


def test_majority_at_1_counts_one_runs_items_not_both(ledgers: tuple[str, str]) -> None:
    both, _ = ledgers
    (block,) = [b for b in readme_sql_blocks(README.read_text()) if "accuracy_by_budget" in b]
    rows = _sql(both, block)
    (majority_1,) = [r for r in rows if r["strategy"] == "majority" and r["budget"] == 1]
    assert majority_1["items"] == NEWER_ITEMS  # not OLDER_ITEMS + NEWER_ITEMS
    # and the unfiltered view does hold both runs, so the filter is what made the difference
    everything = _sql(both, "SELECT run_id, items FROM accuracy_by_budget WHERE budget = 1 "
                      "AND strategy = 'majority' ORDER BY run_id")  # fmt: skip
    assert everything == [
        {"run_id": "newer", "items": NEWER_ITEMS},
        {"run_id": "older", "items": OLDER_ITEMS},
    ]


def test_the_schema_is_described_once_and_the_readme_says_the_same(
    ledgers: tuple[str, str],
) -> None:
    both, _ = ledgers
    with Ledger(both, read_only=True) as ledger:
        objects = {o.name: o for o in ledger_objects(ledger)}
    # Every table and view of a migrated lake has its line, and no line names a missing one.
    assert set(objects) == set(DESCRIPTIONS)
    readme = README.read_text()
    for name, description in DESCRIPTIONS.items():
        assert f"| `{name}` | {description} |" in readme, name
        assert (objects[name].kind == "view") == description.startswith("View:"), name
    for view in (o for o in objects.values() if o.kind == "view"):
        assert "run_id" in [column for column, _ in view.columns], view.name
    printed = runner.invoke(app, ["sql", "--schema", "--ledger", both])
    assert printed.exit_code == 0, printed.output
    for name, obj in objects.items():
        assert f"{name} ({obj.kind}): {obj.description}" in printed.stdout
    # Each object's columns with their types, under its own line.
    runs_block = printed.stdout.split("runs (table): ", 1)[1].split("\n\n", 1)[0]
    assert re.search(r"^    tokens_generated +BIGINT$", runs_block, flags=re.MULTILINE)
    assert re.search(r"^    model +VARCHAR$", runs_block, flags=re.MULTILINE)


def test_parquet_output_keeps_rows_and_types(ledgers: tuple[str, str], tmp_path: Path) -> None:
    import duckdb

    both, _ = ledgers
    out = tmp_path / "curve.parquet"
    query = (
        "SELECT run_id, strategy, budget, accuracy, on_frontier FROM report_curve_points "
        "WHERE run_id = 'newer' ORDER BY ALL"
    )
    result = runner.invoke(
        app, ["sql", query, "--ledger", both, "--format", "parquet", "--output", str(out)]
    )
    assert result.exit_code == 0, result.output
    expected = _sql(both, query)
    con = duckdb.connect()
    read = con.execute(f"SELECT * FROM '{out}' ORDER BY ALL").fetchall()
    assert [dict(zip(expected[0], row, strict=True)) for row in read] == expected
    types = dict(con.execute(f"SELECT column_name, column_type FROM (DESCRIBE '{out}')").fetchall())
    assert types["budget"] == "INTEGER" and types["on_frontier"] == "BOOLEAN"
    # Parquet needs a file, and the query itself still may not write one.
    missing = runner.invoke(app, ["sql", query, "--ledger", both, "--format", "parquet"])
    assert missing.exit_code == 2
    copy = runner.invoke(
        app, ["sql", f"COPY (SELECT 1) TO '{tmp_path / 'x.parquet'}'", "--ledger", both]
    )
    assert copy.exit_code == 2 and not (tmp_path / "x.parquet").exists()


def test_runs_lists_every_run_with_its_saving(ledgers: tuple[str, str]) -> None:
    both, _ = ledgers
    listed = runner.invoke(app, ["runs", "--ledger", both])
    assert listed.exit_code == 0, listed.output
    assert "older" in listed.stdout and "newer" in listed.stdout and "saving" in listed.stdout
    rows = json.loads(runner.invoke(app, ["runs", "--ledger", both, "--format", "json"]).stdout)
    summary = _sql(both, "SELECT run_id, round(sweep_saving, 2) AS saving FROM run_summary")
    assert {r["run_id"]: r["saving"] for r in rows} == {r["run_id"]: r["saving"] for r in summary}
    assert all(r["saving"] >= 1 for r in rows)  # the scripted sweep shares its samples too
