"""Money and cutoffs from the request: stored with the run, never part of its id."""

from __future__ import annotations

import json

import pytest
from synthetic_ledger import synthetic_ledger
from typer.testing import CliRunner

from ttscale.analysis.synthetic import PlantedCurve, SyntheticLedgerSpec
from ttscale.cli import app
from ttscale.ledger.report_data import (
    build_report_from_ledger,
    report_settings,
    stored_report_options,
)
from ttscale.schemas import BatchRequest, ReportOptions

SPEC = SyntheticLedgerSpec(
    curves=(PlantedCurve("majority", (1, 2, 4, 8), f_max=0.8, p=0.4),),
    slices=(("gsm8k", "en"),),
    items_per_slice=40,
    seed=5,
)


def test_prices_do_not_change_the_run_id() -> None:
    plain = BatchRequest(input_uri="q.jsonl")
    priced = BatchRequest(
        input_uri="q.jsonl",
        report=ReportOptions(price_in=0.2, price_out=0.6, gpu_hour=2.0, tau=1.0, min_items=5),
    )
    assert plain.resolved_run_id() == priced.resolved_run_id()
    assert plain.fingerprint() == priced.fingerprint()
    # The run form shows the section with titles; every option starts unset.
    form = BatchRequest.model_json_schema()
    options = form["$defs"]["ReportOptions"]["properties"]
    assert options["price_out"]["title"] == "Price per 1M output tokens (USD)"
    assert all(field.get("default", None) is None for field in options.values())


def test_usd_is_tokens_times_price_exactly(tmp_path) -> None:
    con = synthetic_ledger(SPEC, tmp_path / "l.duckdb")
    settings = report_settings(ReportOptions(price_in=0.25, price_out=2.0))
    report = build_report_from_ledger(con, SPEC.run_id, settings)
    for point in report.slices[0].curves:
        expected = point.mean_completion_tokens * 2.0 / 1e6 + point.mean_prompt_tokens * 0.25 / 1e6
        assert point.usd_per_item == expected
        assert point.usd_per_correct == expected * point.items / point.correct
    unpriced = build_report_from_ledger(con, SPEC.run_id)
    assert all(p.usd_per_item is None for p in unpriced.slices[0].curves)
    # Nothing but money moves.
    assert [p.accuracy for p in unpriced.slices[0].curves] == [
        p.accuracy for p in report.slices[0].curves
    ]


def test_stored_settings_are_reused_unless_overridden(tmp_path) -> None:
    con = synthetic_ledger(SPEC, tmp_path / "l.duckdb")
    con.execute(
        "UPDATE runs SET request_json = ? WHERE run_id = ?",
        [json.dumps({"report": {"price_out": 1.0, "tau": 2.0}}), SPEC.run_id],
    )
    stored = stored_report_options(con, SPEC.run_id)
    assert stored == ReportOptions(price_out=1.0, tau=2.0)
    report = build_report_from_ledger(con, SPEC.run_id)
    assert report.settings.price_per_million_tokens == 1.0 and report.settings.tau == 2.0
    point = report.slices[0].curves[0]
    assert point.usd_per_item == point.mean_completion_tokens * 1.0 / 1e6
    overridden = report_settings(stored, {"price_out": 3.0})
    assert overridden.price_per_million_tokens == 3.0 and overridden.tau == 2.0


def test_report_command_takes_price_flags(tmp_path) -> None:
    path = tmp_path / "l.duckdb"
    synthetic_ledger(SPEC, path).close()
    out = tmp_path / "out"
    result = CliRunner().invoke(
        app,
        [
            *("report", SPEC.run_id, "--ledger", str(path), "--out", f"file://{out}"),
            *("--price-out", "4", "--price-in", "1", "--tau", "0.25", "--lambda", "0.1"),
        ],
    )
    assert result.exit_code == 0, result.output
    saved = json.loads((out / "runs" / SPEC.run_id / "report" / "report.json").read_text())
    assert saved["settings"]["price_per_million_tokens"] == 4.0
    assert saved["settings"]["prompt_price_per_million_tokens"] == 1.0
    assert saved["settings"]["tau"] == 0.25 and saved["lambda_per_1k_tokens"] == 0.1
    point = saved["slices"][0]["curves"][0]
    assert point["usd_per_item"] == pytest.approx(
        point["mean_completion_tokens"] * 4 / 1e6 + point["mean_prompt_tokens"] / 1e6, rel=1e-12
    )


def test_run_flags_reach_the_request(tmp_path) -> None:
    from ttscale.cli.report_flags import report_options
    from ttscale.cli.run import build_request

    flags = report_options(0.1, 0.4, None, 1.5, None, 10)
    request = build_request(None, {"input_uri": "q.jsonl"}, [1, 2], report=flags)
    assert request.report == ReportOptions(price_in=0.1, price_out=0.4, tau=1.5, min_items=10)
    assert (
        request.resolved_run_id()
        == build_request(None, {"input_uri": "q.jsonl"}, [1, 2]).resolved_run_id()
    )
