"""The CLI: read-only SQL in three formats, replay, and errors as exit codes (no tracebacks)."""

from __future__ import annotations

import ast
import json
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest
from ledger_helpers import open_ledger
from typer.testing import CliRunner

from ttscale.cli import app

runner = CliRunner()


@pytest.fixture
def ledger(tmp_path: Path, scripted_ledger: Callable[[Path], Path]) -> str:
    return str(scripted_ledger(tmp_path / "l.duckdb"))


def test_sql_formats(ledger: str) -> None:
    query = "SELECT item_id, calls FROM item_decisions ORDER BY item_id"
    as_json = runner.invoke(app, ["sql", query, "--ledger", ledger, "--format", "json"])
    assert as_json.exit_code == 0
    assert json.loads(as_json.stdout) == [{"item_id": f"q{i}", "calls": 8} for i in range(4)]
    as_csv = runner.invoke(app, ["sql", query, "--ledger", ledger, "--format", "csv"])
    assert as_csv.stdout.splitlines()[:2] == ["item_id,calls", "q0,8"]
    assert "q3" in runner.invoke(app, ["sql", query, "--ledger", ledger]).stdout


def test_errors_are_messages_and_exit_codes(ledger: str, tmp_path: Path) -> None:
    bad_sql = runner.invoke(app, ["sql", "SELEC 1", "--ledger", ledger])
    assert (
        bad_sql.exit_code == 7
        and "query failed" in bad_sql.output
        and "Traceback" not in bad_sql.output
    )
    write = runner.invoke(app, ["sql", "DELETE FROM runs", "--ledger", ledger])
    assert write.exit_code == 2 and "refused" in write.output  # read-only sandbox
    missing = runner.invoke(
        app,
        ["run", "--input", str(tmp_path / "none.jsonl"), "--ledger", str(tmp_path / "x.duckdb")],
    )
    assert missing.exit_code == 3 and "no such input" in missing.output
    bad_budget = runner.invoke(app, ["run", "--input", "x.jsonl", "--majority", "1,x"])
    assert bad_budget.exit_code == 2


# ESC (window 4) at budgets 4 and 8 on the fixture's 4 items × 8 recorded samples, as
# test_replay_command derives them by hand from the answers in generation_calls: no item's first
# window agrees; one item's second window does.
EXPECTED_ESC_REASONS = {4: Counter(cap=4), 8: Counter(cap=3, window_agreed=1)}


def _reasons(cell: str) -> dict[str, int]:
    """The stop_reasons cell of one replay table row, e.g. "{'cap': 3, 'window_agreed': 1}"."""
    return dict(ast.literal_eval(cell))


def test_replay_command(ledger: str) -> None:
    result = runner.invoke(
        app, ["replay", "r1", "--ledger", ledger, "--pool-budget", "8",
              "--strategy", '{"kind": "esc", "n": [4, 8], "window": 4}'],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    # The expected stop reasons, by hand from the recorded answers: ESC with window 4 stops
    # "window_agreed" when samples 0-3 (then 4-7) all parsed to one answer, else "cap" at 8.
    with open_ledger(ledger) as con:
        rows = con.execute(
            "SELECT item_id, sample_index, extracted_answer FROM generation_calls "
            "WHERE run_id = 'r1' ORDER BY item_id, sample_index"
        ).fetchall()
    answers: dict[str, list[str | None]] = {}
    for item_id, _, answer in rows:
        answers.setdefault(item_id, []).append(answer)
    assert [len(a) for a in answers.values()] == [8] * 4

    def agrees(window: list[str | None]) -> bool:
        return None not in window and len(set(window)) == 1

    expected: dict[int, Counter[str]] = {4: Counter(), 8: Counter()}
    for item in answers.values():
        expected[4]["window_agreed" if agrees(item[:4]) else "cap"] += 1
        agreed = agrees(item[:4]) or agrees(item[4:8])
        expected[8]["window_agreed" if agreed else "cap"] += 1
    assert expected == EXPECTED_ESC_REASONS  # pinned: both reasons occur
    # Table rows: │ strategy │ budget │ … │ stop_reasons │ (piped output is 120 wide: one line).
    cells = [
        [cell.strip() for cell in line.strip("│").split("│")]
        for line in result.stdout.splitlines()
        if line.startswith("│")
    ]
    rows_by_budget = {int(row[1]): row[-1] for row in cells if row[0] == "esc"}
    assert set(rows_by_budget) == {4, 8}
    for budget, reasons in expected.items():
        assert _reasons(rows_by_budget[budget]) == dict(reasons), result.stdout
    too_many = runner.invoke(
        app, ["replay", "r1", "--ledger", ledger, "--strategy", '{"kind": "majority", "n": [9]}']
    )
    assert too_many.exit_code == 2


def test_replay_takes_specs_and_refuses_budgets_past_the_pool(ledger: str) -> None:
    ok = runner.invoke(
        app, ["replay", "r1", "--ledger", ledger, "--strategy", "esc:n=4,8,window=2"]
    )
    assert ok.exit_code == 0, ok.output
    assert ok.stdout.count("esc") == 2  # one row per budget, 4 and 8
    too_big = runner.invoke(app, ["replay", "r1", "--ledger", ledger, "--strategy", "esc:n=16"])
    assert too_big.exit_code == 2
    assert "pool of run r1 holds 8" in too_big.output and "Traceback" not in too_big.output
