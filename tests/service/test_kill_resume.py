"""SIGKILL a batch in the middle of a shard, re-run it: nothing lost, nothing counted twice."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

from service_helpers import (
    UNITS_PER_ITEM,
    decisions_per_item,
    ledger_totals,
    scaled,
    scripted_request,
    write_questions,
)

from flows.batch import ttscale_batch
from ttscale.service import RunLayout, read_parts
from ttscale.storage import LocalStore

REPO = Path(__file__).resolve().parents[2]
ITEMS = 40


def _parts_and_done(out: Path) -> tuple[list[Path], list[Path]]:
    return sorted(out.rglob("part-*.jsonl")), sorted(out.rglob("done.json"))


def test_sigkill_mid_shard_then_resume_counts_every_token_once(
    prefect_env: dict[str, str], prefect_api: str, tmp_path: Path
) -> None:
    questions = write_questions(tmp_path / "questions.jsonl", ITEMS)
    # ~1 s per request, two sequential requests per unit: a shard takes a few seconds.
    engine = {"delay_s": 1.0}
    killed_out = tmp_path / "killed"
    request = scripted_request(
        str(questions), f"file://{killed_out}", killed_out / "ledger.duckdb",
        shard_size=20, engine=engine,
    )  # fmt: skip
    request_file = tmp_path / "request.json"
    request_file.write_text(request.model_dump_json())

    worker = subprocess.Popen(
        [sys.executable, "-m", "flows.batch", str(request_file)],
        cwd=REPO,
        env=prefect_env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + scaled(45)
        while not _parts_and_done(killed_out)[0]:
            assert worker.poll() is None, "the batch ended before the kill"
            assert time.monotonic() < deadline, "no part object appeared"
            time.sleep(0.02)
        worker.send_signal(signal.SIGKILL)
    finally:
        worker.kill()
        worker.wait()
    parts, done = _parts_and_done(killed_out)
    assert parts and len(done) < 2, "killed too late: the interrupted run had finished"

    resumed = ttscale_batch(request)
    reference_out = tmp_path / "uninterrupted"
    reference = ttscale_batch(
        request.model_copy(
            update={
                "output_uri": f"file://{reference_out}",
                "ledger_path": str(reference_out / "ledger.duckdb"),
            }
        )
    )
    assert resumed["run_id"] == reference["run_id"]
    run_id = resumed["run_id"]

    # Every item has every unit; no unit generated twice among the checkpointed parts.
    per_item = decisions_per_item(killed_out / "ledger.duckdb", run_id)
    assert len(per_item) == ITEMS and set(per_item.values()) == {UNITS_PER_ITEM}
    store = LocalStore(killed_out)
    shards = [RunLayout.of("", run_id).shard(i) for i in range(2)]
    records = Counter(r.key for shard in shards for _, rs in read_parts(store, shard) for r in rs)
    assert len(records) == ITEMS * UNITS_PER_ITEM
    assert max(records.values()) == 1, [k for k, n in records.items() if n > 1][:5]

    # The ledger of the interrupted + resumed run equals that of an uninterrupted one.
    killed_totals = ledger_totals(killed_out / "ledger.duckdb", run_id)
    reference_totals = ledger_totals(reference_out / "ledger.duckdb", run_id)
    assert killed_totals == reference_totals
    assert killed_totals["units"] == killed_totals["distinct_units"] == ITEMS * UNITS_PER_ITEM
    assert killed_totals["error_units"] == 0
    assert killed_totals["completion_tokens"] == killed_totals["unit_completion_tokens"] > 0
    manifest = json.loads((killed_out / shards[0].done).read_text())
    assert manifest["engine"].startswith("scripted")
