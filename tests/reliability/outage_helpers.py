"""Helpers of the real-outage tests (test_real_outages.py): ports, waiting, runs as subprocesses,
and reading back what a run left in its parts and the ledger."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
from ledger_helpers import open_ledger


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_until(check: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.1)
    raise TimeoutError(f"{what} not ready after {timeout:.0f} s")


def _answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=2).status_code < 500
    except httpx.HTTPError:
        return False


def _kill_group(process: subprocess.Popen[bytes]) -> None:
    """SIGKILL a process started with ``start_new_session`` and everything in its group."""
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGKILL)
    process.wait(timeout=30)


def _questions(path: Path, count: int) -> Path:
    rows = [
        {"id": f"q{i}", "question": f"What is {i} plus {i + 5}?", "answer": str(2 * i + 5)}
        for i in range(count)
    ]
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


def _start_run(config: Path, cwd: Path, env: dict[str, str]) -> subprocess.Popen[str]:
    environ = os.environ | {"AWS_EC2_METADATA_DISABLED": "true"} | env
    if not environ.get("PREFECT_API_URL"):
        environ.pop("PREFECT_API_URL", None)
    return subprocess.Popen(
        [sys.executable, "-m", "ttscale.cli", "run", "--config", str(config)],
        cwd=cwd,
        env=environ,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _finish(run: subprocess.Popen[str], timeout: float = 300) -> tuple[int, str]:
    stdout, stderr = run.communicate(timeout=timeout)
    return run.returncode, stdout + stderr


def _assert_one_error_line(output: str, code: int, returncode: int, *words: str) -> str:
    assert returncode == code, output
    assert "Traceback" not in output
    errors = [line for line in output.splitlines() if "error" in line.lower()]
    assert len(errors) == 1, output
    (line,) = errors
    assert line.startswith("error: "), output
    for word in words:
        assert word in line, line
    return line


def _settled_records(parts: dict[str, list[dict[str, Any]]]) -> list[dict[str, Any]]:
    """Every record that needs no new attempt (success or a refusal), across all parts."""
    return [
        r
        for records in parts.values()
        for r in records
        if r.get("error") is None or r.get("error_retryable") is False
    ]


def _unit(record: dict[str, Any]) -> tuple[str, str, int]:
    return (record["item_id"], record["strategy"], int(record["budget"]))


def _ledger_units(ledger: Path, run_id: str) -> dict[tuple[str, str, int], list[str]]:
    """Each unit of the run in the ledger with the completion texts of its calls, in order."""
    with open_ledger(str(ledger)) as con:
        rows = con.execute(
            "SELECT d.item_id, d.strategy, d.budget, "
            "list(c.completion_text ORDER BY c.sample_index, c.call_index) "
            "FROM item_decisions d LEFT JOIN generation_calls c "
            "USING (run_id, item_id, strategy, budget) WHERE d.run_id = ? GROUP BY ALL",
            [run_id],
        ).fetchall()
    return {(item, strategy, int(budget)): list(texts) for item, strategy, budget, texts in rows}


def _ledger_runs(ledger: Path) -> list[str]:
    if not ledger.exists():
        return []
    with open_ledger(str(ledger)) as con:
        return [row[0] for row in con.execute("SELECT run_id FROM runs").fetchall()]


def _added_units(output: str) -> int:
    """The ``+N units`` of the run's ``ledger: ...`` line."""
    (line,) = [line for line in output.splitlines() if line.startswith("ledger: ")]
    return int(line.split("(+", 1)[1].split(" units", 1)[0])


def _assert_exactly_once(
    before: dict[str, list[dict[str, Any]]],
    after: dict[str, list[dict[str, Any]]],
    ledger: Path,
    run_id: str,
    total: int,
) -> None:
    """Parts written before the outage are kept as they were; each unit is settled once."""
    assert set(before) <= set(after)
    assert all(after[key] == records for key, records in before.items())
    settled = _settled_records(after)
    units = [_unit(r) for r in settled]
    assert len(units) == len(set(units)) == total  # no unit generated twice
    in_ledger = _ledger_units(ledger, run_id)
    assert len(in_ledger) == total
    # The units finished before the outage are the ones in the ledger, calls and all.
    for record in _settled_records(before):
        texts = [c["completion_text"] for c in sorted(
            record["calls"], key=lambda c: (c["sample_index"], c["call_index"])
        )]  # fmt: skip
        assert in_ledger[_unit(record)] == texts


# -- exit 5: the engine dies mid-run --------------------------------------------------------------
