"""Shard execution on the scripted engine: every call recorded, failures contained, resumable."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from ttscale.engines.config import ScriptedEngineConfig
from ttscale.engines.scripted import ScriptedEngine
from ttscale.prompts import PROFILES
from ttscale.records import UnitResult
from ttscale.runner import Unit, attempt_unit, expand_units, run_shard_units
from ttscale.schemas import Question
from ttscale.service import PartWriter, ShardLayout, read_parts
from ttscale.storage import LocalStore
from ttscale.strategies.config import BudgetForcingConfig, MajorityConfig

Q = Question(id="q", question="What is 20 plus 22?", answer="42", dataset="arithmetic")


def _run(engine: ScriptedEngine, unit: Unit, question: Question = Q) -> dict:
    return asyncio.run(attempt_unit(engine, PROFILES["plain"], question, unit, "r", 7)).to_json()


def test_majority_records_every_sample_and_votes() -> None:
    engine = ScriptedEngine(ScriptedEngineConfig(accuracy=1.0))
    record = _run(engine, Unit("majority", 5, MajorityConfig(n=[5])))
    assert engine.requests == 5 and len(record["calls"]) == 5
    assert sorted(c["sample_index"] for c in record["calls"]) == [0, 1, 2, 3, 4]
    assert record["final_answer"] == "42" and record["correct"] is True
    assert record["detail"]["votes"] == {"42": 5}
    for call in record["calls"]:
        assert call["completion_tokens"] == len(call["completion_text"])  # 1 char = 1 token
        assert call["thinking_tokens"] + call["answer_tokens"] == call["completion_tokens"]
        assert call["answer_tokens"] > 0  # split at "Final Answer:"


def test_majority_samples_are_paired_across_budgets() -> None:
    engine = ScriptedEngine(ScriptedEngineConfig(accuracy=0.5))
    small = _run(engine, Unit("majority", 2, MajorityConfig(n=[2])))
    large = _run(engine, Unit("majority", 4, MajorityConfig(n=[4])))
    texts = {c["sample_index"]: c["completion_text"] for c in large["calls"]}
    assert all(texts[c["sample_index"]] == c["completion_text"] for c in small["calls"])


@pytest.mark.parametrize("budget", [5, 17, 40, 200])
@pytest.mark.parametrize("extensions", [0, 2])
def test_budget_forcing_never_exceeds_budget(budget: int, extensions: int) -> None:
    engine = ScriptedEngine(ScriptedEngineConfig(accuracy=1.0))
    record = _run(
        engine,
        Unit(
            "budget_forcing",
            budget,
            BudgetForcingConfig(budgets_tokens=[budget], extensions=extensions),
        ),
    )
    thinking = sum(c["thinking_tokens"] for c in record["calls"])
    assert 0 < thinking <= budget
    assert record["calls"][-1]["phase"] == "answer" and record["calls"][-1]["answer_tokens"] > 0
    assert record["stop_reason"] in ("budget_reached", "model_stopped")
    if budget == 5:
        assert record["stop_reason"] == "budget_reached" and thinking == 5
    assert record["final_answer"] == "42"


def test_engine_request_failures_are_retried() -> None:
    engine = ScriptedEngine(ScriptedEngineConfig(accuracy=1.0))
    engine.fail_every = 3
    record = _run(engine, Unit("majority", 4, MajorityConfig(n=[4])))
    assert record["stop_reason"] == "budget_reached" and len(record["calls"]) == 4
    assert engine.requests > 4  # the failed attempts happened, and produced no rows


def test_a_failing_item_is_recorded_not_raised() -> None:
    engine = ScriptedEngine(ScriptedEngineConfig(accuracy=1.0))
    engine.fail_every = 1  # every request fails: retries run out
    record = _run(engine, Unit("majority", 2, MajorityConfig(n=[2])))
    assert record["stop_reason"] == "error" and "EngineRequestError" in record["error"]
    assert record["correct"] is False and record["calls"] == []


def test_shard_resumes_from_parts(tmp_path: Path) -> None:
    store = LocalStore(tmp_path)
    questions = [
        Question(id=f"q{i}", question=f"What is {i} plus 1?", answer=str(i + 1)) for i in range(6)
    ]
    units = expand_units([MajorityConfig(n=[1, 2])])
    engine = ScriptedEngine(ScriptedEngineConfig())
    shard = ShardLayout("shard")
    writer = PartWriter(store, shard, every_units=4)
    kwargs = {"run_id": "r", "run_seed": 0, "writer": writer}
    first = asyncio.run(
        run_shard_units(engine, PROFILES["plain"], questions[:4], units, skip=set(), **kwargs)
    )
    assert first == 8 and len(writer.parts_written) == 2
    done = {r.key for _, recs in read_parts(store, shard) for r in recs}
    requests_before = engine.requests
    second = asyncio.run(
        run_shard_units(engine, PROFILES["plain"], questions, units, skip=done, **kwargs)
    )
    assert second == 4  # only the two new questions × two units
    assert engine.requests - requests_before == 2 * (1 + 2)
    keys = [r.key for _, recs in read_parts(store, shard) for r in recs]
    assert len(keys) == len(set(keys)) == 12


SUCCESS_KEYS = [
    "run_id", "item_id", "strategy", "budget", "final_answer", "correct", "stop_reason",
    "samples_used", "answered_language", "detail", "error", "calls",
]  # fmt: skip
CALL_KEYS = [
    "sample_index", "call_index", "phase", "prompt_tokens", "completion_tokens",
    "thinking_tokens", "answer_tokens", "finish_reason", "stop_reason", "latency_s", "used",
    "seed", "cumulative_logprob", "score", "extracted_answer", "completion_text",
    # Appended by the sample cache; the ledger's ingest reads the keys above and ignores these.
    "cached", "generated_tokens", "cache_key", "token_ids",
    # Appended with token confidence (DeepConf); the ledger reads them (migration 6).
    "mean_confidence", "lowest_group_confidence", "tail_confidence",
]  # fmt: skip


def test_a_unit_result_keeps_the_part_line_shape() -> None:
    """Part objects are ingested by the ledger as written: keys and their order never change."""
    engine = ScriptedEngine(ScriptedEngineConfig(accuracy=1.0))
    unit = Unit("majority", 2, MajorityConfig(n=[2]))
    result = asyncio.run(attempt_unit(engine, PROFILES["plain"], Q, unit, "r", 7))
    record = result.to_json()
    assert list(record) == SUCCESS_KEYS
    assert [list(c) for c in record["calls"]] == [CALL_KEYS, CALL_KEYS]
    assert result.key == ("q", "majority", 2) and result.settled
    assert result.completion_tokens == sum(c["completion_tokens"] for c in record["calls"])
    assert UnitResult.from_json(record) == result
    assert result.to_line() == (json.dumps(record, ensure_ascii=False) + "\n").encode()

    engine.fail_every = 1
    failed = asyncio.run(attempt_unit(engine, PROFILES["plain"], Q, unit, "r", 7))
    failed_record = failed.to_json()
    assert list(failed_record) == [*SUCCESS_KEYS[:-1], "error_retryable", "calls"]
    assert failed_record["error_retryable"] is True and not failed.settled
    assert UnitResult.from_json(failed_record) == failed


def test_records_of_older_parts_still_read() -> None:
    """Before ``error_retryable`` an errored record counted as retryable; unknown keys are ignored."""
    old = {
        "run_id": "r", "item_id": "q", "strategy": "majority", "budget": "4",
        "final_answer": None, "correct": False, "stop_reason": "error", "samples_used": 0,
        "detail": {}, "error": "EngineRequestError: down", "calls": [], "extra": 1,
    }  # fmt: skip
    result = UnitResult.from_json(old)
    assert result.key == ("q", "majority", 4)
    assert result.error is not None and result.error.retryable is None and not result.settled
    refused = UnitResult.from_json(old | {"error_retryable": False})
    assert refused.settled
