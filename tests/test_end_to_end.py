"""End to end on the embedded SmolLM2 model with real vLLM (CPU). Slow, but it runs in CI."""

from __future__ import annotations

from pathlib import Path

import pytest
from ledger_helpers import open_ledger

pytest.importorskip("vllm")
from ttscale.model_prep import default_embedded_dir, is_prepared

pytestmark = pytest.mark.slow


@pytest.mark.skipif(
    not is_prepared(default_embedded_dir()),
    reason="run `ttscale models prepare` first (make test does)",
)
def test_embedded_model_batch(prefect_harness: None, tmp_path: Path) -> None:
    from importlib.resources import files

    from flows.batch import ttscale_batch
    from ttscale.schemas import BatchRequest

    request = BatchRequest.model_validate(
        {
            "input_uri": str(files("ttscale") / "data" / "demo.jsonl"),
            "output_uri": f"file://{tmp_path}/out",
            "ledger_path": str(tmp_path / "ledger.duckdb"),
            "strategies": [
                {"kind": "majority", "n": [1, 2], "max_tokens": 64},
                {"kind": "budget_forcing", "budgets_tokens": [16, 48]},
            ],
            "max_items": 6,
        }
    )
    result = ttscale_batch(request)
    assert result["units_added"] == 6 * 4
    con = open_ledger(result["ledger"])
    (engine,) = con.execute("SELECT engine_kind FROM runs").fetchone()
    assert engine == "vllm"
    (over,) = con.execute(
        "SELECT count(*) FROM item_spend WHERE strategy = 'budget_forcing' AND thinking_tokens > budget"
    ).fetchone()
    assert over == 0
    (mismatch,) = con.execute(
        "SELECT count(*) FROM item_decisions d JOIN item_spend s USING (run_id, item_id, strategy, budget) "
        "WHERE d.completion_tokens <> s.completion_tokens"
    ).fetchone()
    assert mismatch == 0
    (tokens,) = con.execute("SELECT sum(completion_tokens) FROM generation_calls").fetchone()
    assert tokens > 0
    assert Path(result["report"]["html"].removeprefix("file://")).exists()
