"""policy.json: the report's recommendations in a form serving can load."""

from __future__ import annotations

import json

from ledger_helpers import open_ledger
from synthetic_ledger import synthetic_ledger
from typer.testing import CliRunner

from ttscale.analysis.synthetic import PlantedCurve, SyntheticLedgerSpec
from ttscale.cli import app
from ttscale.ledger.report_data import build_report_from_ledger
from ttscale.reports.policy import POLICY_SCHEMA, build_policy, strategy_settings

SPEC = SyntheticLedgerSpec(
    curves=(
        PlantedCurve("majority", (1, 2, 4, 8), f_max=0.8, p=0.45),
        PlantedCurve("budget_forcing", (32, 64, 128), f_max=0.7, p=0.5),
    ),
    slices=(("gsm8k", "en"), ("mgsm", "sw")),
    items_per_slice=40,
    seed=11,
)
SMALL = SyntheticLedgerSpec(
    curves=(PlantedCurve("majority", (1, 2, 4), f_max=0.8, p=0.45),),
    slices=(("mgsm", "de"),),
    items_per_slice=12,
    seed=4,
    run_id="small-run",
)
STORED = {
    "report": {"price_out": 2.0, "price_in": 0.5},
    "strategies": {
        "majority": {"kind": "majority", "n": [1, 2, 4, 8], "temperature": 0.7, "max_tokens": 512},
        "budget_forcing": {"kind": "budget_forcing", "budgets_tokens": [32, 64, 128]},
    },
}


def _ledger(tmp_path):
    path = tmp_path / "l.duckdb"
    con = synthetic_ledger(SPEC, path)
    con.execute(
        "UPDATE runs SET request_json = ? WHERE run_id = ?", [json.dumps(STORED), SPEC.run_id]
    )
    con.close()
    return path


def test_policy_command_prints_the_reports_recommendations(tmp_path) -> None:
    path = _ledger(tmp_path)
    result = CliRunner().invoke(app, ["policy", SPEC.run_id, "--ledger", str(path)])
    assert result.exit_code == 0, result.output
    policy = json.loads(result.stdout)
    assert policy["schema"] == POLICY_SCHEMA == "ttscale.policy/v1"
    with open_ledger(path) as con:
        report = build_report_from_ledger(con, SPEC.run_id)
    recommended = {
        (s.dataset, s.language): r
        for s in report.slices
        for r in s.recommendations
        if r.rule == "marginal_gain"
    }
    withheld = {(s.dataset, s.language) for s in report.slices if s.withheld}
    assert {(e["dataset"], e["language"]) for e in policy["entries"]} == set(recommended)
    assert {(w["dataset"], w["language"]) for w in policy["withheld"]} == withheld
    assert policy["entries"], "the demo-like run recommends something"
    for entry in policy["entries"]:
        r = recommended[(entry["dataset"], entry["language"])]
        assert (entry["strategy"], entry["budget"]) == (r.strategy, r.budget)
        assert entry["expected"]["accuracy"] == r.accuracy
        assert entry["expected"]["tokens_per_item"] == r.mean_completion_tokens
        low, high = entry["expected"]["accuracy_ci"]
        assert low <= r.accuracy <= high
        # Stored prices are used: USD = tokens × price.
        assert entry["expected"]["usd_per_item"] is not None
        settings = entry["settings"]
        assert settings["kind"] == r.strategy
        budget_key = "n" if r.strategy == "majority" else "budgets_tokens"
        assert settings[budget_key] == r.budget
        if r.strategy == "majority":
            assert settings["temperature"] == 0.7 and settings["max_tokens"] == 512


def test_slices_without_evidence_get_no_entry_and_unknown_runs_exit_2(tmp_path) -> None:
    path = tmp_path / "s.duckdb"
    synthetic_ledger(SMALL, path).close()
    result = CliRunner().invoke(app, ["policy", SMALL.run_id, "--ledger", str(path)])
    assert result.exit_code == 0, result.output
    policy = json.loads(result.stdout)
    assert policy["entries"] == []
    (w,) = policy["withheld"]
    assert w["reason"].startswith("not enough evidence") and w["needed"] == (
        "at least 30 items (has 12)"
    )
    unknown = CliRunner().invoke(app, ["policy", "no-such-run", "--ledger", str(path)])
    assert unknown.exit_code == 2 and "no-such-run" in unknown.output


def test_policy_is_published_next_to_report_json(tmp_path) -> None:
    path = _ledger(tmp_path)
    out = tmp_path / "out"
    result = CliRunner().invoke(
        app, ["report", SPEC.run_id, "--ledger", str(path), "--out", f"file://{out}"]
    )
    assert result.exit_code == 0, result.output
    folder = out / "runs" / SPEC.run_id / "report"
    published = json.loads((folder / "policy.json").read_text())
    assert (
        folder / "report.json"
    ).is_file() and f"report (policy): file://{folder}" in result.output
    report = json.loads((folder / "report.json").read_text())
    assert published["generated_at"] == report["generated_at"]


def test_strategy_settings_from_either_request_form() -> None:
    listed = {"strategies": [{"kind": "majority", "n": [1, 4], "top_p": 0.9}]}
    assert strategy_settings(listed, "majority", 4) == {"kind": "majority", "n": 4, "top_p": 0.9}
    assert strategy_settings({"strategies": ["majority"]}, "majority", 4) == {"kind": "majority"}
    assert build_policy.__doc__
