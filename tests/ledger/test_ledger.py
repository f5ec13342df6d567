"""The ledger on a real DuckDB file: migrations, idempotent per-unit ingest, exact token totals."""

from __future__ import annotations

import asyncio
from pathlib import Path

import duckdb
import pytest

from ttscale.engines.config import ScriptedEngineConfig
from ttscale.engines.scripted import ScriptedEngine
from ttscale.errors import LedgerError
from ttscale.ledger import Ledger
from ttscale.ledger.migrations import MIGRATIONS
from ttscale.prompts import PROFILES
from ttscale.runner import expand_units, run_unit
from ttscale.schemas import Question
from ttscale.strategies.config import BudgetForcingConfig, MajorityConfig

QUESTIONS = [
    Question(id=f"q{i}", question=f"What is {i} plus 2?", answer=str(i + 2)) for i in range(3)
]


def _records(seed: int = 0) -> list[dict]:
    engine = ScriptedEngine(ScriptedEngineConfig(accuracy=0.5))
    units = expand_units([MajorityConfig(n=[1, 3]), BudgetForcingConfig(budgets_tokens=[16, 64])])

    async def go() -> list[dict]:
        return list(
            await asyncio.gather(
                *(
                    run_unit(engine, PROFILES["plain"], q, u, "r1", seed)
                    for q in QUESTIONS
                    for u in units
                )
            )
        )

    return asyncio.run(go())


def _open(tmp_path: Path) -> Ledger:
    ledger = Ledger(tmp_path / "ledger.duckdb")
    ledger.add_items("r1", QUESTIONS)
    return ledger


def test_migrations_apply_once(tmp_path: Path) -> None:
    with Ledger(tmp_path / "l.duckdb") as ledger:
        assert ledger.schema_version() == MIGRATIONS[-1].version
        assert ledger.migrate() == []  # nothing new the second time
    with Ledger(tmp_path / "l.duckdb") as ledger:
        _names, rows = ledger.query("SELECT name FROM schema_migrations ORDER BY version")
        assert [r[0] for r in rows] == [m.name for m in MIGRATIONS]


def test_ingest_is_idempotent_and_totals_equal_call_sums(tmp_path: Path) -> None:
    records = _records()
    with _open(tmp_path) as ledger:
        units, calls = ledger.ingest_units([("part-1", records)])
        assert units == len(records) == 12
        assert calls == sum(len(r["calls"]) for r in records)
        # The same records again, and again under another part name (a zombie worker): no change.
        assert ledger.ingest_units([("part-1", records)]) == (0, 0)
        assert ledger.ingest_units([("part-0", records)]) == (0, 0)
        _, rows = ledger.query(
            "SELECT count(*) FROM item_decisions d JOIN item_spend s "
            "USING (run_id, item_id, strategy, budget) "
            "WHERE d.completion_tokens <> s.completion_tokens OR d.prompt_tokens <> s.prompt_tokens "
            "OR d.thinking_tokens <> s.thinking_tokens OR d.calls <> s.calls"
        )
        assert rows[0][0] == 0
        _, rows = ledger.query("SELECT sum(completion_tokens) FROM generation_calls")
        assert rows[0][0] == sum(c["completion_tokens"] for r in records for c in r["calls"])


def test_duplicate_unit_in_one_ingest_counts_once(tmp_path: Path) -> None:
    records = _records()
    with _open(tmp_path) as ledger:
        units, calls = ledger.ingest_units([("part-b", records), ("part-a", records[:4])])
        assert units == 12 and calls == sum(len(r["calls"]) for r in records)


def test_a_unit_lands_whole_or_not_at_all(tmp_path: Path) -> None:
    records = _records()
    broken = dict(records[0]) | {"calls": [dict(c) for c in records[0]["calls"]]}
    broken["calls"][0]["thinking_tokens"] += 1  # violates completion = thinking + answer
    with _open(tmp_path) as ledger:
        with pytest.raises(LedgerError):
            ledger.ingest_units([("p", [*records[1:], broken])])
        _, rows = ledger.query("SELECT count(*) FROM generation_calls")
        assert rows[0][0] == 0


def test_cost_accuracy_view(tmp_path: Path) -> None:
    with _open(tmp_path) as ledger:
        ledger.ingest_units([("p", _records())])
        _, rows = ledger.query(
            "SELECT strategy, budget, items, accuracy FROM cost_accuracy ORDER BY strategy, budget"
        )
    assert [(r[0], r[1], r[2]) for r in rows] == [
        ("budget_forcing", 16, 3), ("budget_forcing", 64, 3), ("majority", 1, 3), ("majority", 3, 3),
    ]  # fmt: skip
    assert all(0.0 <= r[3] <= 1.0 for r in rows)


def test_read_only_ledger(tmp_path: Path) -> None:
    with pytest.raises(LedgerError, match="no ledger"):
        Ledger(tmp_path / "missing.duckdb", read_only=True)
    Ledger(tmp_path / "l.duckdb").close()
    with Ledger(tmp_path / "l.duckdb", read_only=True) as ledger:
        with pytest.raises(LedgerError):
            ledger.query("DELETE FROM runs")
        with pytest.raises(duckdb.Error):
            ledger.con.execute("CREATE TABLE x (a INT)")
