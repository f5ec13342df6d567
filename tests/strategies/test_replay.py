"""Replay on a stored pool reproduces live runs; the majority@k estimator matches brute force."""

from __future__ import annotations

import asyncio
import itertools
from pathlib import Path

import pytest

from ttscale.engines.config import ScriptedEngineConfig
from ttscale.engines.scripted import ScriptedEngine
from ttscale.ledger import Ledger
from ttscale.ledger.readers import sample_pool_rows
from ttscale.prompts import PROFILES
from ttscale.runner import Unit, attempt_unit
from ttscale.schemas import Question
from ttscale.strategies.common import majority_vote
from ttscale.strategies.kinds.adaptive_consistency import AdaptiveConsistencyConfig
from ttscale.strategies.kinds.esc import ESCConfig
from ttscale.strategies.kinds.majority import MajorityConfig
from ttscale.strategies.replay import SamplePool, replay, unbiased_majority_at_k

QUESTIONS = [
    Question(
        id=f"q{i}",
        question=f"What is {i} plus {i + 3}?",
        answer=str(2 * i + 3),
        dataset="arithmetic",
    )
    for i in range(6)
]


def _live(config: object, budget: int) -> list[dict]:
    engine = ScriptedEngine(ScriptedEngineConfig(accuracy=0.6))

    async def go() -> list[dict]:
        unit = Unit(config.kind, budget, config)  # type: ignore[attr-defined]
        return [
            (await attempt_unit(engine, PROFILES["plain"], q, unit, "r", 11)).to_json()
            for q in QUESTIONS
        ]

    return asyncio.run(go())


def test_replay_matches_live_runs(tmp_path: Path) -> None:
    pool_records = _live(MajorityConfig(n=[16]), 16)
    with Ledger(tmp_path / "l.duckdb") as ledger:
        ledger.add_items("r", QUESTIONS)
        ledger.ingest_units([("p", pool_records)])
    rows = sample_pool_rows(str(tmp_path / "l.duckdb"), "r", "majority", 16)
    pool = SamplePool.from_rows("r", rows)
    for config, budget in [
        (AdaptiveConsistencyConfig(n=[16], round_size=1), 16),
        (ESCConfig(n=[16], window=4), 16),
    ]:
        live = {r["item_id"]: r for r in _live(config, budget)}
        for result in replay(config, pool, budget):
            expected = live[result.item_id]
            assert result.final_answer == expected["final_answer"]
            assert result.stop_reason == expected["stop_reason"]
            assert result.completion_tokens == sum(
                c["completion_tokens"] for c in expected["calls"]
            )


def _brute_force(answers: list[str | None], gold: str, k: int) -> float:
    """Mean over all k-subsets and all orders of the tie-broken majority (exchangeable order)."""
    total = 0.0
    subsets = list(itertools.combinations(range(len(answers)), k))
    for subset in subsets:
        orders = list(itertools.permutations(subset))
        wins = sum(
            majority_vote([answers[i] for i in order], "generic").winner == gold for order in orders
        )
        total += wins / len(orders)
    return total / len(subsets)


@pytest.mark.parametrize(
    "answers",
    [
        ["1", "1", "2", "3", None],
        ["1", "2", "2", "1", "3", None],
        ["2", "2", "2", "1"],
        ["3", None, "3", "4", "4"],
    ],
)
def test_unbiased_majority_at_k_against_brute_force(answers: list[str | None]) -> None:
    for k in range(1, len(answers) + 1):
        assert unbiased_majority_at_k(answers, "1" if "1" in answers else "3", k) == pytest.approx(
            _brute_force(answers, "1" if "1" in answers else "3", k)
        )
