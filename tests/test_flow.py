"""The ttscale-batch flow under a real (temporary) Prefect API, on the scripted engine."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from ledger_helpers import open_ledger

from flows.batch import ttscale_batch
from ttscale.schemas import BatchRequest

LINES = [
    '{"id": "a", "question": "What is 3 plus 4?", "answer": "7", "dataset": "arithmetic"}',
    '{"id": "b", "question": "What is 10 minus 4?", "answer": "6", "dataset": "arithmetic"}',
    "{oops",
    '{"id": "c", "question": "What is 2 times 4?", "answer": "8"}',
    '{"id": "a", "question": "What is 1 plus 1?", "answer": "2"}',
    '{"id": "d", "answer": "2"}',
]


def test_batch_flow_end_to_end_and_rerun(
    prefect_harness: None, tmp_path: Path, write_jsonl: Callable[[Path, list[str]], Path]
) -> None:
    request = BatchRequest.model_validate(
        {
            "input_uri": str(write_jsonl(tmp_path / "in.jsonl", LINES)),
            "output_uri": f"file://{tmp_path}/out",
            "ledger_path": str(tmp_path / "out" / "ledger.duckdb"),
            "engine": {"kind": "scripted"},
            "strategies": [
                {"kind": "majority", "n": [1, 3]},
                {"kind": "budget_forcing", "budgets_tokens": [8, 32]},
            ],
            "shard_size": 2,
        }
    )
    first = ttscale_batch(request)
    assert first["items"] == 3 and first["bad_rows"] == 3 and first["units_added"] == 12
    errors = Path(first["errors_uri"].removeprefix("file://")).read_text().splitlines()
    assert len(errors) == 3 and all('"line"' in e and '"reason"' in e for e in errors)
    for uri in first["report"].values():
        assert Path(uri.removeprefix("file://")).stat().st_size > 0

    from prefect.artifacts import Artifact

    table = Artifact.get(f"recommendations-{first['run_id']}")
    assert table is not None and "budget" in str(table.data)
    summary = Artifact.get(f"report-{first['run_id']}")
    assert summary is not None and "Cost–accuracy report" in str(summary.data)

    second = ttscale_batch(request)  # same request → same run → nothing doubled
    assert second["run_id"] == first["run_id"]
    assert second["units_added"] == 0 and second["calls_added"] == 0
    assert second["totals"] == first["totals"]
    markdown = Path(first["report"]["markdown"].removeprefix("file://")).read_text()
    assert "Scripted test engine" in markdown

    con = open_ledger(first["ledger"])
    calls, tokens = con.execute(
        "SELECT count(*), sum(completion_tokens) FROM generation_calls"
    ).fetchone()
    assert calls == first["calls_added"] and tokens == first["totals"]["completion_tokens"]
    (mismatch,) = con.execute(
        "SELECT count(*) FROM item_decisions d JOIN item_spend s USING (run_id, item_id, strategy, budget) "
        "WHERE d.completion_tokens <> s.completion_tokens OR d.calls <> s.calls"
    ).fetchone()
    assert mismatch == 0
    (bad,) = con.execute("SELECT count(*) FROM input_errors").fetchone()
    assert bad == 3
