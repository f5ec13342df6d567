"""Errored units are never "done": a run over the threshold fails, a re-run retries them, and the
report keeps them out of every figure. An unreachable engine ends the run as engine-dead."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from ledger_helpers import open_ledger

from flows.batch import ttscale_batch
from ttscale import strategies
from ttscale.errors import (
    EngineDeadError,
    EngineRejectedError,
    EngineRequestError,
    UnitsFailedError,
)
from ttscale.schemas import BatchRequest

LINES = [
    json.dumps({"id": f"q{i}", "question": f"What is {i} plus 2?", "answer": str(i + 2)})
    for i in range(4)
]


def _request(tmp_path: Path, write_jsonl: Callable[..., Path], **extra: Any) -> BatchRequest:
    return BatchRequest.model_validate(
        {
            "input_uri": str(write_jsonl(tmp_path / "in.jsonl", LINES)),
            "output_uri": f"file://{tmp_path}/out",
            "ledger_path": str(tmp_path / "out" / "ledger.duckdb"),
            "engine": {"kind": "scripted", "accuracy": 1.0},
            "strategies": [{"kind": "majority", "n": [1, 2]}],
            "shard_size": 2,
        }
        | extra
    )


@pytest.fixture
def q1_fails(monkeypatch: pytest.MonkeyPatch) -> Callable[[], None]:
    """Majority fails on item q1 (as a request failing past its retries would) until healed."""
    real = strategies.STRATEGIES["majority"]

    async def flaky(ctx: Any, config: Any) -> Any:
        if ctx.question.id == "q1":
            raise EngineRequestError("scripted outage for q1")
        return await real(ctx, config)

    monkeypatch.setitem(strategies.STRATEGIES, "majority", flaky)
    return lambda: monkeypatch.setitem(strategies.STRATEGIES, "majority", real)


def _decisions(ledger: str) -> list[tuple[str, int, str]]:
    with open_ledger(ledger) as con:
        return con.execute(
            "SELECT item_id, budget, stop_reason FROM item_decisions ORDER BY ALL"
        ).fetchall()


def test_errors_past_the_threshold_fail_the_run_and_a_rerun_retries_them(
    prefect_harness: None, tmp_path: Path, write_jsonl: Callable[..., Path], q1_fails: Any
) -> None:
    request = _request(tmp_path, write_jsonl)  # fail_on_error defaults to 0
    with pytest.raises(UnitsFailedError, match="2 of 8 units failed"):
        ttscale_batch(request)
    assert not (tmp_path / "out" / "ledger.duckdb").exists()  # nothing ingested
    shards = sorted((tmp_path / "out" / "runs" / request.resolved_run_id() / "shards").iterdir())
    assert [(s / "done.json").exists() for s in shards] == [False, True]  # q1 is in shard 0

    q1_fails()  # the engine is healthy again
    result = ttscale_batch(request)
    assert result["units_added"] == 8
    assert all(reason != "error" for _, _, reason in _decisions(result["ledger"]))
    assert result["totals"]["units"] == 8


def test_errors_under_the_threshold_are_reported_apart(
    prefect_harness: None, tmp_path: Path, write_jsonl: Callable[..., Path], q1_fails: Any
) -> None:
    request = _request(tmp_path, write_jsonl, fail_on_error=0.5)
    result = ttscale_batch(request)
    errored = [
        (item, budget) for item, budget, reason in _decisions(result["ledger"]) if reason == "error"
    ]
    assert errored == [("q1", 1), ("q1", 2)]
    report = json.loads(Path(result["report"]["json"].removeprefix("file://")).read_text())
    assert report["errored_units"] == 2
    # Errored units are neither right nor wrong: every curve point counts the 3 healthy items.
    points = [p for s in report["slices"] for p in s["curves"]]
    assert points and all(p["items"] == 3 for p in points)

    q1_fails()
    again = ttscale_batch(request)  # the shard with q1 was left unfinished: retried now
    assert again["units_added"] == 2  # q1's retried units replace their errored decisions
    assert all(reason != "error" for _, _, reason in _decisions(again["ledger"]))
    healed = json.loads(Path(again["report"]["json"].removeprefix("file://")).read_text())
    assert healed["errored_units"] == 0
    assert all(p["items"] == 4 for s in healed["slices"] for p in s["curves"])
    shard = tmp_path / "out" / "runs" / request.resolved_run_id() / "shards" / "00000"
    assert (shard / "done.json").exists()
    with open_ledger(again["ledger"]) as con:
        mismatches = con.execute(
            "SELECT count(*) FROM item_decisions d JOIN item_spend s "
            "USING (run_id, item_id, strategy, budget) WHERE d.completion_tokens <> s.completion_tokens"
        ).fetchone()
    assert mismatches == (0,)


def test_refused_requests_count_against_the_threshold(
    prefect_harness: None,
    tmp_path: Path,
    write_jsonl: Callable[..., Path],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A 4xx is not retried and leaves its shard finished, but it is still a failed unit."""
    real = strategies.STRATEGIES["majority"]

    async def refused(ctx: Any, config: Any) -> Any:
        if ctx.question.id == "q1":
            raise EngineRejectedError("HTTP 400: prompt too long")
        return await real(ctx, config)

    monkeypatch.setitem(strategies.STRATEGIES, "majority", refused)
    with pytest.raises(UnitsFailedError, match=r"2 of 8 units failed.*refused"):
        ttscale_batch(_request(tmp_path, write_jsonl))
    assert not (tmp_path / "out" / "ledger.duckdb").exists()


def test_an_unreachable_engine_is_engine_dead(
    prefect_harness: None, tmp_path: Path, write_jsonl: Callable[..., Path]
) -> None:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    engine = {"kind": "openai", "base_url": f"http://127.0.0.1:{port}/v1", "model": "m"}
    request = _request(tmp_path, write_jsonl, engine=engine)
    with pytest.raises(EngineDeadError, match="unreachable"):
        ttscale_batch(request)
    assert not (tmp_path / "out" / "ledger.duckdb").exists()
    shards = (tmp_path / "out" / "runs" / request.resolved_run_id() / "shards").iterdir()
    assert not any((s / "done.json").exists() for s in shards)
