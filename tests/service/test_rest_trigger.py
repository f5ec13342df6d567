"""`ttscale serve` against a local Prefect server: a flow run created through the REST API, with
parameters, fans its shards out to the shard deployment and completes."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from service_helpers import (
    UNITS_PER_ITEM,
    ledger_totals,
    scaled,
    scripted_request,
    stop,
    wait_until,
    write_questions,
)

from flows.deployments import ADHOC_LOCAL, NIGHTLY_LOCAL, SHARD_DEPLOYMENT_LOCAL

REPO = Path(__file__).resolve().parents[2]
ITEMS = 6
FINAL = {"COMPLETED", "FAILED", "CRASHED", "CANCELLED"}


def _post(url: str, body: dict[str, Any]) -> httpx.Response:
    """POST as Prefect's own client does: a busy SQLite server may answer 5xx; try again."""
    for _ in range(5):
        response = httpx.post(url, json=body, timeout=30)
        if response.status_code < 500 and response.status_code != 429:
            break
        time.sleep(1)
    return response


@pytest.fixture
def served(prefect_env: dict[str, str], tmp_path: Path) -> Any:
    """``ttscale serve`` in a subprocess, until its deployments are registered."""
    log = (tmp_path / "serve.log").open("wb")
    runner = subprocess.Popen(
        [sys.executable, "-m", "ttscale.cli", "serve", "--cron", "0 3 * * *"],
        cwd=REPO,
        env=prefect_env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    api = prefect_env["PREFECT_API_URL"]

    def registered() -> bool:
        assert runner.poll() is None, (tmp_path / "serve.log").read_text()[-3000:]
        names = (
            f"ttscale-batch/{ADHOC_LOCAL}",
            f"ttscale-batch/{NIGHTLY_LOCAL}",
            SHARD_DEPLOYMENT_LOCAL,
        )
        return all(httpx.get(f"{api}/deployments/name/{n}").status_code == 200 for n in names)

    try:
        wait_until(registered, scaled(60), "ttscale serve")
        yield api
    finally:
        stop(runner)
        log.close()


def test_rest_triggered_run_fans_out_shards_and_completes(served: str, tmp_path: Path) -> None:
    api = served
    nightly = httpx.get(f"{api}/deployments/name/ttscale-batch/{NIGHTLY_LOCAL}").json()
    assert [s["schedule"]["cron"] for s in nightly["schedules"]] == ["0 3 * * *"]
    assert nightly["parameters"]["request"]["input_uri"].endswith("demo.jsonl")
    # The work-pool deployments' names (prefect.yaml) stay free for `prefect deploy`.
    for name in ("ttscale-batch/nightly", "ttscale-batch/adhoc", "ttscale-shard/gpu"):
        assert httpx.get(f"{api}/deployments/name/{name}").status_code == 404, name

    # One GPU: shard runs take turns on the slot.
    limit = _post(f"{api}/v2/concurrency_limits/", {"name": "gpu-slots", "limit": 1})
    assert limit.status_code in (201, 409), limit.text

    out = tmp_path / "out"
    request = scripted_request(
        str(write_questions(tmp_path / "q.jsonl", ITEMS)), f"file://{out}", out / "ledger.duckdb",
        shard_size=3, shard_deployment=SHARD_DEPLOYMENT_LOCAL,
    )  # fmt: skip
    deployment = httpx.get(f"{api}/deployments/name/ttscale-batch/{ADHOC_LOCAL}").json()
    created = _post(
        f"{api}/deployments/{deployment['id']}/create_flow_run",
        {"parameters": {"request": request.model_dump(mode="json")}},
    )
    assert created.status_code == 201, created.text
    run_id = created.json()["id"]

    deadline = time.monotonic() + scaled(150)
    while (state := httpx.get(f"{api}/flow_runs/{run_id}").json()["state"])["type"] not in FINAL:
        assert time.monotonic() < deadline, f"flow run still {state['type']}"
        time.sleep(1)
    assert state["type"] == "COMPLETED", state

    children = _post(
        f"{api}/flow_runs/filter", {"flow_runs": {"parent_flow_run_id": {"any_": [run_id]}}}
    ).json()
    assert len(children) == 2
    assert {c["state"]["type"] for c in children} == {"COMPLETED"}
    totals = ledger_totals(out / "ledger.duckdb", request.resolved_run_id())
    assert totals["units"] == totals["distinct_units"] == ITEMS * UNITS_PER_ITEM
