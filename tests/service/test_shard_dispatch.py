"""How the batch flow reads the end state of a remote shard run (no server needed)."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import pytest
from prefect.client.schemas.objects import FlowRun
from prefect.states import Cancelled, Completed, Crashed, Failed, State
from service_helpers import scripted_request

import flows.batch
from ttscale.errors import ConfigError, FatalError, ShardRunCrashedError
from ttscale.service import ShardLayout, resolve_run


def _dispatch(state: State[Any], monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Any:
    calls: list[dict[str, Any]] = []

    def fake_run_deployment(name: str, **kwargs: Any) -> FlowRun:
        calls.append({"name": name, **kwargs})
        return FlowRun(id=uuid.uuid4(), name="shard-run", flow_id=uuid.uuid4(), state=state)

    monkeypatch.setattr(flows.batch, "run_deployment", fake_run_deployment)
    request = scripted_request(
        "in.jsonl", "s3://b/out", tmp_path / "l.duckdb", shard_deployment="ttscale-shard/gpu"
    )
    shard = ShardLayout("runs/r/shards/00003")
    result = flows.batch.run_shard_deployment.fn(resolve_run(request), shard)
    (call,) = calls
    assert call["name"] == "ttscale-shard/gpu"
    assert call["parameters"]["shard_prefix"] == "runs/r/shards/00003"
    assert call["parameters"]["request"]["output_uri"] == "s3://b/out"
    assert call["flow_run_name"].endswith("-00003") and call["timeout"] is None
    return result


def test_completed_shard_run(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    assert _dispatch(Completed(), monkeypatch, tmp_path)


@pytest.mark.parametrize("state", [Crashed(message="worker lost"), Cancelled()])
def test_lost_shard_run_is_recoverable(
    state: State[Any], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    with pytest.raises(ShardRunCrashedError, match="00003"):
        _dispatch(state, monkeypatch, tmp_path)


def test_failed_shard_run_is_fatal(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    with pytest.raises(FatalError, match="engine dead") as failed:
        _dispatch(Failed(message="engine dead"), monkeypatch, tmp_path)
    assert not isinstance(failed.value, ShardRunCrashedError)


def test_no_shard_deployment_is_a_config_error(tmp_path: Path) -> None:
    request = scripted_request("in.jsonl", "s3://b/out", tmp_path / "l.duckdb")
    with pytest.raises(ConfigError):
        flows.batch.run_shard_deployment.fn(
            resolve_run(request), ShardLayout("runs/r/shards/00000")
        )
