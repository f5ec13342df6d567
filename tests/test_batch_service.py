"""The service layer's pieces that need no engine: the run's layout, its resolution, step retries."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from ttscale.errors import InputError, TransientStorageError
from ttscale.inputs import load_input
from ttscale.schemas import BatchRequest
from ttscale.service import RunLayout, resolve_run, retry_step
from ttscale.storage import LocalStore


def _request(tmp_path: Path, output_uri: str) -> BatchRequest:
    return BatchRequest.model_validate(
        {
            "input_uri": str(tmp_path / "in.jsonl"),
            "output_uri": output_uri,
            "ledger_path": str(tmp_path / "ledger.duckdb"),
            "engine": {"kind": "scripted"},
            "strategies": [{"kind": "majority", "n": [1, 2]}],
            "run_id": "r1",
        }
    )


def test_the_layout_names_every_key_of_a_run_as_runs_always_had_them() -> None:
    layout = RunLayout.of("base/prefix", "r1")
    assert layout.request == "base/prefix/runs/r1/request.json"
    assert layout.errors == "base/prefix/runs/r1/errors.jsonl"
    assert layout.run_log == "base/prefix/runs/r1/run.log"
    assert layout.report == "base/prefix/runs/r1/report"
    shard = layout.shard(3)
    assert shard.prefix == "base/prefix/runs/r1/shards/00003" and shard.name == "00003"
    assert shard.input == "base/prefix/runs/r1/shards/00003/input.jsonl"
    assert shard.done == "base/prefix/runs/r1/shards/00003/done.json"
    part = shard.new_part()
    assert part.startswith(shard.parts) and part.endswith(".jsonl")
    assert shard.new_part() != part
    assert RunLayout.of("", "r1").shard(0).prefix == "runs/r1/shards/00000"


def test_resolving_a_run_opens_its_stores_and_writes_nothing(tmp_path: Path) -> None:
    ctx = resolve_run(_request(tmp_path, f"file://{tmp_path}/out"))
    assert ctx.run_id == "r1" and [(u.strategy, u.budget) for u in ctx.units] == [
        ("majority", 1),
        ("majority", 2),
    ]
    assert isinstance(ctx.output, LocalStore) and ctx.layout == RunLayout("runs/r1")
    assert ctx.log_path() == tmp_path / "out" / "runs" / "r1" / "run.log"
    assert not (tmp_path / "out").exists()
    with pytest.raises(InputError, match="no such input"):
        load_input(ctx.input)


def test_s3_runs_log_under_ttscale_home(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, s3_env: str
) -> None:
    monkeypatch.setenv("TTSCALE_HOME", str(tmp_path / "home"))
    ctx = resolve_run(_request(tmp_path, f"s3://{s3_env}/out"))
    assert ctx.layout == RunLayout("out/runs/r1")
    assert ctx.log_path() == tmp_path / "home" / "logs" / "r1.log"


def test_a_step_is_retried_on_recoverable_errors_only(monkeypatch: pytest.MonkeyPatch) -> None:
    waits: list[float] = []
    monkeypatch.setattr(time, "sleep", waits.append)  # tenacity sleeps through time.sleep
    calls = []

    def flaky(fail_times: int) -> str:
        calls.append(1)
        if len(calls) <= fail_times:
            raise TransientStorageError("503")
        return "ok"

    assert retry_step(flaky, 2) == "ok" and len(calls) == 3
    assert len(waits) == 2
    assert all(0.5 * d <= w <= 1.5 * d for w, d in zip(waits, (2, 10), strict=True))
    calls.clear()
    with pytest.raises(TransientStorageError):
        retry_step(flaky, 99)
    assert len(calls) == 4  # the first try and three retries

    def fatal() -> None:
        calls.append(1)
        raise InputError("bad")

    calls.clear()
    with pytest.raises(InputError):
        retry_step(fatal)
    assert len(calls) == 1
