"""DeepConf offline replays from the confidence statistics a run stored in its ledger."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from ttscale.engines.config import ScriptedEngineConfig
from ttscale.engines.scripted import ScriptedEngine
from ttscale.ledger import Ledger
from ttscale.ledger.readers import sample_pool_rows
from ttscale.prompts import PROFILES
from ttscale.runner import Unit, attempt_unit
from ttscale.schemas import Question
from ttscale.strategies.kinds.deepconf import DeepConfConfig
from ttscale.strategies.replay import CONFIDENCE_COLUMNS, SamplePool, replay

QUESTIONS = [
    Question(id=f"q{i}", question=f"What is {i} plus {i + 3}?", answer=str(2 * i + 3),
             dataset="arithmetic")
    for i in range(6)
]  # fmt: skip
OFFLINE = DeepConfConfig(
    n=[10], mode="offline", keep_percent=40.0, window=12, top_logprobs=3, max_tokens=400
)


def _live(config: DeepConfConfig, budget: int) -> list[dict[str, Any]]:
    engine = ScriptedEngine(ScriptedEngineConfig(accuracy=0.5))

    async def go() -> list[dict[str, Any]]:
        unit = Unit(config.kind, budget, config)
        return [
            (await attempt_unit(engine, PROFILES["plain"], q, unit, "r", 11)).to_json()
            for q in QUESTIONS
        ]

    return asyncio.run(go())


@pytest.fixture(scope="module")
def pool(tmp_path_factory: pytest.TempPathFactory) -> tuple[SamplePool, list[dict[str, Any]]]:
    records = _live(OFFLINE, 10)
    path = Path(tmp_path_factory.mktemp("deepconf")) / "l.duckdb"
    with Ledger(path) as ledger:
        ledger.add_items("r", QUESTIONS)
        ledger.ingest_units([("p", records)])
    rows = sample_pool_rows(str(path), "r", "deepconf", 10)
    return SamplePool.from_rows("r", rows), records


def test_the_ledger_keeps_each_calls_confidence(
    pool: tuple[SamplePool, list[dict[str, Any]]],
) -> None:
    stored, records = pool
    by_item = {item.item_id: item for item in stored.items}
    for record in records:
        calls = sorted(record["calls"], key=lambda c: c["sample_index"])
        samples = by_item[record["item_id"]].samples
        assert [s.confidence for s in samples] == [
            {name: pytest.approx(c[name]) for name in CONFIDENCE_COLUMNS} for c in calls
        ]
        assert all(c["lowest_group_confidence"] is not None for c in calls)


@pytest.mark.parametrize("budget", [10, 6])
def test_offline_replay_matches_live_runs(
    pool: tuple[SamplePool, list[dict[str, Any]]], budget: int
) -> None:
    stored, _ = pool
    live = {r["item_id"]: r for r in _live(OFFLINE, budget)}
    results = replay(OFFLINE, stored, budget)
    assert len(results) == len(QUESTIONS)
    for result in results:
        expected = live[result.item_id]
        assert result.final_answer == expected["final_answer"]
        assert result.detail["kept"] == expected["detail"]["kept"]
        assert result.completion_tokens == sum(c["completion_tokens"] for c in expected["calls"])


def test_online_replay_is_refused(pool: tuple[SamplePool, list[dict[str, Any]]]) -> None:
    stored, _ = pool
    online = OFFLINE.model_copy(update={"mode": "online", "warmup": 4})
    with pytest.raises(ValueError, match="mode=offline"):
        replay(online, stored, 10)


def test_a_lake_from_before_the_confidence_columns_still_gives_its_pool(tmp_path: Path) -> None:
    records = _live(OFFLINE, 4)
    path = tmp_path / "old.duckdb"
    with Ledger(path) as ledger:
        ledger.add_items("r", QUESTIONS)
        ledger.ingest_units([("p", records)])
        # Undo migration 6, as a lake last written before it looks.
        for name in CONFIDENCE_COLUMNS:
            ledger.con.execute(f"ALTER TABLE generation_calls DROP COLUMN {name}")
        ledger.con.execute("DELETE FROM schema_migrations WHERE version = 6")
    rows = sample_pool_rows(str(path), "r", "deepconf", 4)
    assert len(rows) == 4 * len(QUESTIONS)
    assert all(row[name] is None for row in rows for name in CONFIDENCE_COLUMNS)
    samples = SamplePool.from_rows("r", rows).items[0].samples
    assert all(sample.confidence is None for sample in samples)
