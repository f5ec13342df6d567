"""The CLI: read-only SQL in three formats, replay, and errors as exit codes (no tracebacks)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from ttscale.cli import app
from ttscale.engines.config import ScriptedEngineConfig
from ttscale.engines.scripted import ScriptedEngine
from ttscale.ledger import Ledger
from ttscale.prompts import PROFILES
from ttscale.runner import Unit, run_unit
from ttscale.schemas import Question
from ttscale.strategies.config import MajorityConfig

runner = CliRunner()


@pytest.fixture
def ledger(tmp_path: Path) -> str:
    questions = [
        Question(id=f"q{i}", question=f"What is {i} plus 1?", answer=str(i + 1)) for i in range(4)
    ]
    engine = ScriptedEngine(ScriptedEngineConfig(accuracy=0.7))

    async def go() -> list[dict]:
        unit = Unit("majority", 8, MajorityConfig(n=[8]))
        return [await run_unit(engine, PROFILES["plain"], q, unit, "r1", 0) for q in questions]

    path = tmp_path / "l.duckdb"
    with Ledger(path) as led:
        led.add_items("r1", questions)
        led.ingest_units([("p", asyncio.run(go()))])
    return str(path)


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


def test_replay_command(ledger: str) -> None:
    result = runner.invoke(
        app, ["replay", "r1", "--ledger", ledger, "--pool-budget", "8",
              "--strategy", '{"kind": "esc", "n": [4, 8], "window": 4}'],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "esc" in result.stdout
    assert "window_agreed" in result.stdout or "cap" in result.stdout
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
