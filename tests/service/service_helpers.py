"""Service-test helpers: arithmetic questions, batch requests on the scripted engine, ledger sums."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ledger_helpers import open_ledger

from ttscale.schemas import BatchRequest

UNITS_PER_ITEM = 4
"""majority n ∈ {1, 3} and budget forcing B ∈ {8, 32}."""


@dataclass(frozen=True)
class PrefectServer:
    """The session's ``prefect server start`` (fixture ``prefect_server`` in conftest.py)."""

    env: dict[str, str]
    """The environment that reaches it (PREFECT_API_URL, PREFECT_HOME, ...)."""
    log: Path
    """The server's stdout and stderr, scheduler and other services included."""


def time_scale() -> float:
    """``TTSCALE_TEST_TIME_SCALE`` (float, default 1): every service-test deadline is multiplied by it.

    Raise it on a slow or loaded machine instead of editing deadlines.
    """
    text = os.environ.get("TTSCALE_TEST_TIME_SCALE", "").strip()
    if not text:
        return 1.0
    scale = float(text)
    if scale <= 0:
        raise ValueError(f"TTSCALE_TEST_TIME_SCALE must be > 0, got {text!r}")
    return scale


def scaled(seconds: float) -> float:
    """A deadline of ``seconds`` on an unloaded machine, scaled by ``TTSCALE_TEST_TIME_SCALE``."""
    return seconds * time_scale()


def question_lines(count: int, seed: int = 0) -> list[str]:
    """``count`` "What is A plus B?" rows the scripted engine can answer."""
    rng = random.Random(seed)
    lines = []
    for i in range(count):
        a, b = rng.randint(2, 90), rng.randint(2, 90)
        row = {"id": f"q{i:04d}", "question": f"What is {a} plus {b}?", "answer": str(a + b)}
        lines.append(json.dumps(row))
    return lines


def write_questions(path: Path, count: int) -> Path:
    path.write_text("".join(line + "\n" for line in question_lines(count)))
    return path


def scripted_request(
    input_uri: str, output_uri: str, ledger: Path, **overrides: Any
) -> BatchRequest:
    """A request on the scripted engine; ``engine`` overrides merge into its config."""
    engine = {"kind": "scripted", **overrides.pop("engine", {})}
    return BatchRequest.model_validate(
        {
            "input_uri": input_uri,
            "output_uri": output_uri,
            "ledger_path": str(ledger),
            "engine": engine,
            "strategies": [
                {"kind": "majority", "n": [1, 3]},
                {"kind": "budget_forcing", "budgets_tokens": [8, 32]},
            ],
            "seed": 11,
        }
        | overrides
    )


def ledger_rows(ledger: Path, run_id: str, *queries: str) -> list[tuple[Any, ...]]:
    """The one row each of ``queries`` (each with the run id as its one parameter) returns."""
    con = open_ledger(str(ledger))
    try:
        rows = [con.execute(sql, [run_id]).fetchone() for sql in queries]
    finally:
        con.close()
    assert all(row is not None for row in rows)
    return [tuple(row) for row in rows if row is not None]


def ledger_totals(ledger: Path, run_id: str) -> dict[str, Any]:
    """What must not change between an interrupted and an uninterrupted run."""
    calls, decisions = ledger_rows(
        ledger,
        run_id,
        "SELECT count(*), sum(prompt_tokens), sum(completion_tokens), sum(thinking_tokens), "
        "sum(answer_tokens) FROM generation_calls WHERE run_id = ?",
        "SELECT count(*), count(DISTINCT (item_id, strategy, budget)), "
        "count(*) FILTER (WHERE stop_reason = 'error'), sum(correct::INTEGER), "
        "sum(completion_tokens) FROM item_decisions WHERE run_id = ?",
    )
    return {
        "calls": calls[0],
        "prompt_tokens": calls[1],
        "completion_tokens": calls[2],
        "thinking_tokens": calls[3],
        "answer_tokens": calls[4],
        "units": decisions[0],
        "distinct_units": decisions[1],
        "error_units": decisions[2],
        "correct": decisions[3],
        "unit_completion_tokens": decisions[4],
    }


def decisions_per_item(ledger: Path, run_id: str) -> dict[str, int]:
    con = open_ledger(str(ledger))
    try:
        rows = con.execute(
            "SELECT i.item_id, count(d.item_id) FROM items i LEFT JOIN item_decisions d "
            "USING (run_id, item_id) WHERE i.run_id = ? GROUP BY 1",
            [run_id],
        ).fetchall()
    finally:
        con.close()
    return {item: count for item, count in rows}


def stop(process: subprocess.Popen[bytes], timeout: float = 15) -> None:
    """SIGINT (Prefect servers, runners and workers shut down cleanly on it), then SIGKILL."""
    if process.poll() is None:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def wait_until(check: Callable[[], bool], timeout: float, what: str, interval: float = 0.5) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(interval)
    raise TimeoutError(f"{what} not ready after {timeout:.0f} s")
