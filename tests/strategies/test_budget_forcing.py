"""s1 budget forcing: thinking never exceeds B; extensions append 'Wait'; answers counted apart."""

from __future__ import annotations

import pytest
from strategy_helpers import CountingEngine, assert_accounted, run

from ttscale.strategies.kinds.budget_forcing import BudgetForcingConfig


def _thinking(record: dict) -> int:
    return sum(
        c["completion_tokens"] for c in record["calls"] if c["phase"] in ("thinking", "extension")
    )


@pytest.mark.parametrize("budget", [1, 7, 20, 60, 150, 400])
@pytest.mark.parametrize("extensions", [0, 1, 3])
def test_thinking_never_exceeds_the_budget(budget: int, extensions: int) -> None:
    engine = CountingEngine(accuracy=1.0)
    config = BudgetForcingConfig(budgets_tokens=[budget], extensions=extensions)
    record = run(engine, config, budget)
    assert_accounted(record, engine)
    assert _thinking(record) <= budget
    assert record["detail"]["thinking_tokens"] == _thinking(record)
    answer_calls = [c for c in record["calls"] if c["phase"] == "answer"]
    assert len(answer_calls) == 1
    assert answer_calls[0]["thinking_tokens"] == 0
    assert answer_calls[0]["answer_tokens"] == answer_calls[0]["completion_tokens"]
    for c in record["calls"]:
        if c["phase"] != "answer":
            assert c["answer_tokens"] == 0
    if record["stop_reason"] == "budget_reached":
        assert _thinking(record) == budget


def test_small_budget_forces_the_answer() -> None:
    engine = CountingEngine(accuracy=1.0)
    record = run(engine, BudgetForcingConfig(budgets_tokens=[10]), 10)
    assert record["stop_reason"] == "budget_reached"
    assert _thinking(record) == 10
    assert engine.prompts[-1].endswith("Final Answer: ")  # delimiter + answer cue forced
    assert record["correct"]


def test_extensions_replace_the_delimiter_with_wait() -> None:
    engine = CountingEngine(accuracy=1.0)
    record = run(engine, BudgetForcingConfig(budgets_tokens=[2000], extensions=2), 2000)
    assert_accounted(record, engine)
    phases = [c["phase"] for c in record["calls"]]
    assert phases == ["thinking", "extension", "extension", "answer"]
    assert record["detail"]["extensions"] == 2
    assert record["stop_reason"] == "model_stopped"
    for prompt in engine.prompts[1:3]:
        assert prompt.endswith(" Wait")
        # the suppressed delimiter is gone from the continued thinking
        assert prompt.count("Final Answer:") == prompt.split("<|assistant|>")[0].count(
            "Final Answer:"
        )


def test_extension_stops_when_budget_runs_out() -> None:
    engine = CountingEngine(accuracy=1.0)
    config = BudgetForcingConfig(budgets_tokens=[120], extensions=16)
    record = run(engine, config, 120)
    assert _thinking(record) <= 120
    assert record["stop_reason"] == "budget_reached"
    assert record["detail"]["extensions"] >= 1
