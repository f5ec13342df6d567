"""Prefect's scheduler on a real server: a served deployment of ``ttscale-batch`` on an interval
schedule gets flow runs created by the server's scheduler service, and they complete.

This is the check that catches a Prefect/SQLAlchemy pair whose scheduler fails every pass (prefect
3.7 with SQLAlchemy 2.1: ``InvalidRequestError: Can't evaluate bulk DML statement``): no run is
ever created, and the server log shows the scheduler's traceback.
"""

from __future__ import annotations

import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from service_helpers import (
    UNITS_PER_ITEM,
    PrefectServer,
    ledger_totals,
    scaled,
    scripted_request,
    stop,
    wait_until,
    write_questions,
)

from ttscale.schemas import BatchRequest

REPO = Path(__file__).resolve().parents[2]
ITEMS = 3
INTERVAL_S = 10
DEPLOYMENT = "scheduler-test"
FINAL = {"COMPLETED", "FAILED", "CRASHED", "CANCELLED"}

# Serve one interval-scheduled deployment of the batch flow; at most one flow run at a time so
# scheduled runs never share the DuckDB ledger. Stops on SIGINT.
SERVE = """
import json, sys
import prefect
from flows.batch import ttscale_batch

request, interval = json.loads(sys.argv[1]), float(sys.argv[2])
prefect.serve(
    ttscale_batch.to_deployment(
        name=sys.argv[3], interval=interval, parameters={"request": request}, tags=["test"]
    ),
    limit=1,
)
"""

# What the scheduler services (and the database layer under them) log when a pass fails.
SCHEDULER_ERRORS = re.compile(
    r"Can't evaluate bulk DML|InvalidRequestError|"
    r"(?i:error).*schedul|schedul.*(?i:error)"
)


def _scheduler_errors(log: str) -> list[str]:
    """Lines of known scheduler failures, plus every traceback block that mentions the scheduler."""
    found = [line for line in log.splitlines() if SCHEDULER_ERRORS.search(line)]
    for block in re.split(r"(?m)^(?=Traceback \(most recent call last\):)", log)[1:]:
        # A traceback block runs until the first unindented line after its frames.
        body = re.match(r"Traceback.*?\n(?:[ \t].*\n)*.*", block)
        text = body.group(0) if body else block[:3000]
        if "schedul" in text.lower():
            found.append(text)
    return found


def _post(url: str, body: dict[str, Any]) -> httpx.Response:
    """A busy SQLite server may answer 5xx; try again, as Prefect's own client does."""
    for _ in range(5):
        response = httpx.post(url, json=body, timeout=30)
        if response.status_code < 500 and response.status_code != 429:
            break
        time.sleep(1)
    return response


@pytest.fixture
def served_on_interval(
    prefect_server: PrefectServer, tmp_path: Path
) -> Iterator[tuple[str, BatchRequest]]:
    """A served ``ttscale-batch/scheduler-test`` deployment (interval schedule, scripted engine).

    Yields its deployment id and request; deletes the deployment afterwards, so the scheduler
    stops making runs for it on the session's server.
    """
    api = prefect_server.env["PREFECT_API_URL"]
    out = tmp_path / "out"
    request = scripted_request(
        str(write_questions(tmp_path / "q.jsonl", ITEMS)), f"file://{out}", out / "ledger.duckdb"
    )
    serve_log = tmp_path / "serve.log"
    log = serve_log.open("wb")
    runner = subprocess.Popen(
        [sys.executable, "-c", SERVE, request.model_dump_json(), str(INTERVAL_S), DEPLOYMENT],
        cwd=REPO,
        env=prefect_server.env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"{api}/deployments/name/ttscale-batch/{DEPLOYMENT}"
    deployment: dict[str, Any] = {}

    def registered() -> bool:
        assert runner.poll() is None, serve_log.read_text()[-3000:]
        response = httpx.get(url, timeout=10)
        if response.status_code == 200:
            deployment.update(response.json())
        return bool(deployment)

    try:
        wait_until(registered, scaled(90), "served deployment")
        yield deployment["id"], request
        assert runner.poll() is None, f"serve exited early:\n{serve_log.read_text()[-3000:]}"
    finally:
        stop(runner)
        log.close()
        if deployment:
            httpx.delete(f"{api}/deployments/{deployment['id']}", timeout=30)


def test_scheduler_creates_runs_that_complete(
    prefect_server: PrefectServer, served_on_interval: tuple[str, BatchRequest]
) -> None:
    deployment_id, request = served_on_interval
    api = prefect_server.env["PREFECT_API_URL"]
    # Only this test's part of the session server's log.
    log_start = prefect_server.log.stat().st_size

    def server_log() -> str:
        with prefect_server.log.open("rb") as f:
            f.seek(log_start)
            return f.read().decode(errors="replace")

    deployment = httpx.get(f"{api}/deployments/{deployment_id}", timeout=10).json()
    (schedule,) = deployment["schedules"]
    assert schedule["active"] and schedule["schedule"]["interval"] == INTERVAL_S

    query = {"flow_runs": {"deployment_id": {"any_": [deployment_id]}}, "sort": "START_TIME_ASC"}
    runs: list[dict[str, Any]] = []
    deadline = time.monotonic() + scaled(120)
    while True:
        errors = _scheduler_errors(server_log())
        assert not errors, (
            f"scheduler errors in the server log ({len(runs)} runs created so far):\n"
            + "\n".join(errors)[-4000:]
        )
        response = _post(f"{api}/flow_runs/filter", query)
        assert response.status_code == 200, response.text
        runs = response.json()
        if any(r["state"]["type"] == "COMPLETED" for r in runs):
            break
        states = sorted({r["state"]["type"] for r in runs})
        assert time.monotonic() < deadline, (
            f"no completed scheduled run after {scaled(120):.0f} s; "
            f"{len(runs)} runs created, states {states}\nserver log:\n{server_log()[-3000:]}"
        )
        time.sleep(1)

    # The scheduler, not a client, created them: auto-scheduled, INTERVAL_S apart.
    assert runs and all(r["auto_scheduled"] for r in runs)
    starts = sorted(r["expected_start_time"] for r in runs[:3])
    assert len(set(starts)) == len(starts)
    finished = [r for r in runs if r["state"]["type"] in FINAL]
    assert {r["state"]["type"] for r in finished} == {"COMPLETED"}, [
        (r["name"], r["state"]) for r in finished
    ]
    completed = next(r for r in runs if r["state"]["type"] == "COMPLETED")
    assert completed["parameters"]["request"]["input_uri"] == request.input_uri

    totals = ledger_totals(Path(request.ledger_path), request.resolved_run_id())
    assert totals["units"] == totals["distinct_units"] == ITEMS * UNITS_PER_ITEM
    assert totals["error_units"] == 0
    errors = _scheduler_errors(server_log())
    assert not errors, "scheduler errors in the server log:\n" + "\n".join(errors)[-4000:]


def test_scheduler_error_detection() -> None:
    """The log check recognises the SQLAlchemy 2.1 failure and ignores ordinary lines."""
    failing = (
        "12:00:01.000 | ERROR   | docket.worker - Failed to run schedule_deployments\n"
        "Traceback (most recent call last):\n"
        '  File "prefect/server/services/scheduler.py", line 273, in schedule_deployments\n'
        "    inserted_runs = await models.deployments._insert_scheduled_flow_runs(\n"
        "sqlalchemy.exc.InvalidRequestError: Can't evaluate bulk DML statement\n"
    )
    assert _scheduler_errors(failing)
    ok = "12:00:00.000 | INFO    | uvicorn - Application startup complete.\n"
    assert not _scheduler_errors(ok)
