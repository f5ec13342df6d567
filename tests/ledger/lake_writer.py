"""One writer process for the lake concurrency test: ingests runs through ``Ledger.ingest_run``.

    python lake_writer.py LEDGER RUN_ID [RUN_ID ...]

Each run's unit records are generated deterministically from its run id (``run_records``), so the
test knows every token it should find. ``LAKE_WRITER_PAUSE=<file>`` makes the writer touch that
file inside its ingest transaction, after every insert and before COMMIT, then sleep: the test
kills it there with SIGKILL. ``LAKE_WRITER_PAUSE_S`` is how long it sleeps (0: commit at once,
so a kill lands during or just after the commit).
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ITEMS = 60
UNITS = (("majority", 1), ("majority", 4), ("budget_forcing", 64))


def run_records(run_id: str) -> list[dict[str, Any]]:
    """Unit records as ``runner.run_unit`` writes them, with token counts drawn from the run id."""
    rng = random.Random(run_id)
    records = []
    for i in range(ITEMS):
        for strategy, budget in UNITS:
            calls = []
            for sample in range(budget if strategy == "majority" else 1):
                thinking, answer = rng.randint(0, 40), rng.randint(1, 30)
                calls.append({
                    "sample_index": sample, "call_index": 0, "phase": "sample",
                    "prompt_tokens": 20, "completion_tokens": thinking + answer,
                    "thinking_tokens": thinking, "answer_tokens": answer,
                    "finish_reason": "stop", "stop_reason": None, "latency_s": 0.01,
                    "used": True, "seed": sample, "cumulative_logprob": None, "score": None,
                    "extracted_answer": str(i), "completion_text": f"answer {i}",
                })  # fmt: skip
            records.append({
                "run_id": run_id, "item_id": f"q{i:04d}", "strategy": strategy,
                "budget": budget, "final_answer": str(i), "correct": rng.random() < 0.5,
                "stop_reason": "budget_reached", "samples_used": len(calls),
                "answered_language": "en", "detail": {"votes": {str(i): len(calls)}},
                "error": None, "calls": calls,
            })  # fmt: skip
    return records


TOTALS_SQL = (
    "SELECT run_id, count(*) AS calls, sum(completion_tokens) AS tokens "
    "FROM generation_calls GROUP BY run_id ORDER BY run_id"
)


def expected_totals(run_id: str) -> tuple[int, int]:
    """(calls, completion tokens) of one run."""
    calls = [c for r in run_records(run_id) for c in r["calls"]]
    return len(calls), sum(c["completion_tokens"] for c in calls)


def main(ledger: str, run_ids: list[str]) -> None:
    import logging

    from ttscale.ledger import Ledger
    from ttscale.ledger import ledger as ledger_module
    from ttscale.ledger.staging import RunRow
    from ttscale.schemas import Question

    pause = os.environ.get("LAKE_WRITER_PAUSE")
    if pause:
        pause_s = float(os.environ.get("LAKE_WRITER_PAUSE_S", "60"))
        cleanup = ledger_module.INGEST_CLEANUP_SQL

        class Paused(tuple):  # iterated at the end of the transaction, just before COMMIT
            def __iter__(self):  # type: ignore[no-untyped-def]
                yield from cleanup
                Path(pause).touch()
                time.sleep(pause_s)

        ledger_module.INGEST_CLEANUP_SQL = Paused(cleanup)  # type: ignore[assignment]
    logging.basicConfig(level=logging.INFO, format="%(message)s")  # "ledger retrying" to stderr
    questions = [Question(id=f"q{i:04d}", question=f"q {i}", answer=str(i)) for i in range(ITEMS)]
    started = time.monotonic()
    with Ledger(ledger) as lake:
        for run_id in run_ids:
            records = run_records(run_id)
            jsonl = "".join(json.dumps(r) + "\n" for r in records).encode()
            run = RunRow(run_id, "f" * 16, "scripted", "scripted", 0, {}, {}, {})
            lake.ingest_run(run, questions, [], [(f"{run_id}/part-0", jsonl)])
    print(json.dumps({"runs": run_ids, "seconds": round(time.monotonic() - started, 2)}))


def lake_totals(ledger: str | Path) -> dict[str, tuple[int, int]]:
    """(calls, completion tokens) of each run the lake holds."""
    from ttscale.ledger import Ledger

    with Ledger(ledger, read_only=True) as lake:
        _, rows = lake.query(TOTALS_SQL)
    return {run_id: (calls, tokens) for run_id, calls, tokens in rows}


def check_exact(ledger: str | Path, run_ids: list[str]) -> None:
    """The lake holds these runs and no other, each once and whole: its calls and tokens, and
    one decision per unit."""
    from ttscale.ledger import Ledger

    assert lake_totals(ledger) == {r: expected_totals(r) for r in run_ids}
    with Ledger(ledger, read_only=True) as lake:
        _, rows = lake.query(
            "SELECT count(*) FROM (SELECT run_id, item_id, strategy, budget FROM item_decisions "
            "GROUP BY ALL HAVING count(*) > 1)"
        )
        assert rows == [(0,)]


def start_writer(
    ledger: str, run_ids: list[str], env: dict[str, str] | None = None
) -> subprocess.Popen[str]:
    """This script in a process of its own, ingesting ``run_ids`` into ``ledger``."""
    return subprocess.Popen(
        [sys.executable, __file__, ledger, *run_ids],
        env=os.environ | (env or {}),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def kill_inside_commit(ledger: str, run_id: str, marker: Path, pause_s: str = "60") -> None:
    """A writer of ``run_id`` killed with SIGKILL where it pauses (``LAKE_WRITER_PAUSE``): inside
    its ingest transaction, just before COMMIT (``pause_s`` 0: as it commits)."""
    writer = start_writer(
        ledger, [run_id], {"LAKE_WRITER_PAUSE": str(marker), "LAKE_WRITER_PAUSE_S": pause_s}
    )
    deadline = time.monotonic() + 120
    while not marker.exists() and writer.poll() is None and time.monotonic() < deadline:
        time.sleep(0.005)
    assert marker.exists(), writer.communicate()[1][-2000:]
    os.kill(writer.pid, signal.SIGKILL)
    writer.communicate()


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2:])
