"""A scripted run carries its report options end to end: request → ledger → report and policy."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from ttscale.cli import app
from ttscale.schemas import BatchRequest
from ttscale.service import resolve_run, run_batch


def test_prices_in_the_request_reach_the_published_report(tmp_path: Path) -> None:
    rows = [
        {"id": f"q{i}", "question": f"What is {i} plus 1?", "answer": str(i + 1)} for i in range(6)
    ]
    (tmp_path / "in.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    base = {
        "input_uri": str(tmp_path / "in.jsonl"),
        "output_uri": f"file://{tmp_path}/out",
        "ledger_path": str(tmp_path / "ledger.duckdb"),
        "engine": {"kind": "scripted"},
        "strategies": [{"kind": "majority", "n": [1, 2]}],
    }
    request = BatchRequest.model_validate(base | {"report": {"price_out": 3.0, "tau": 1.0}})
    assert request.resolved_run_id() == BatchRequest.model_validate(base).resolved_run_id()
    result = run_batch(resolve_run(request))
    folder = tmp_path / "out" / "runs" / result["run_id"] / "report"
    report = json.loads((folder / "report.json").read_text())
    assert (
        report["settings"]["price_per_million_tokens"] == 3.0 and report["settings"]["tau"] == 1.0
    )
    for point in report["slices"][0]["curves"]:
        assert point["usd_per_item"] == point["mean_completion_tokens"] * 3.0 / 1e6
    # Six items: the guard withholds the recommendation and the policy says why.
    policy = json.loads((folder / "policy.json").read_text())
    assert policy["entries"] == [] and "6 items" in policy["withheld"][0]["reason"]
    assert result["report"]["policy"] == f"file://{folder / 'policy.json'}"

    # `ttscale report` re-uses the stored prices; a flag overrides one of them.
    again = CliRunner().invoke(
        app, ["report", result["run_id"], "--ledger", base["ledger_path"], "--tau", "2"]
    )
    assert again.exit_code == 0, again.output
    regenerated = json.loads((folder / "report.json").read_text())
    assert regenerated["settings"]["price_per_million_tokens"] == 3.0
    assert regenerated["settings"]["tau"] == 2.0
