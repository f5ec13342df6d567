"""A published report's figures in the ledger: what the report says, per run, replaced whole.

Real scripted runs go through the service (ingest, then publish_report, which records the
figures); the rows are compared with the report JSON the same publish wrote.
"""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import pytest

from ttscale.errors import LedgerError
from ttscale.ledger import Ledger
from ttscale.ledger import figures as figures_module
from ttscale.ledger.report_data import build_report_from_ledger
from ttscale.reports.model import Report, ReportSettings
from ttscale.schemas import BatchRequest
from ttscale.service import resolve_run, run_batch

FIGURE_TABLES = (
    "reports",
    "report_curve_points",
    "report_recommendations",
    "report_saturation",
    "report_inverse_scaling",
)


def _questions(path: Path, english: int, german: int) -> str:
    rng = random.Random(5)
    rows = []
    for i, language in enumerate(["en"] * english + ["de"] * german):
        a, b = rng.randint(2, 90), rng.randint(2, 90)
        rows.append({"id": f"q{i:04d}", "question": f"What is {a} plus {b}?",
                     "answer": str(a + b), "language": language})  # fmt: skip
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return str(path)


def _batch(tmp_path: Path, run_id: str, seed: int) -> dict[str, Any]:
    # German has fewer items than min_items: that slice is withheld, with its reason.
    request = BatchRequest.model_validate(
        {
            "input_uri": _questions(tmp_path / f"{run_id}.jsonl", 24, 4),
            "output_uri": f"file://{tmp_path}/out",
            "ledger_path": str(tmp_path / "ledger.sqlite"),
            "run_id": run_id,
            "engine": {"kind": "scripted", "accuracy": 0.6},
            "strategies": [
                {"kind": "majority", "n": [1, 2, 4]},
                {"kind": "budget_forcing", "budgets_tokens": [8, 16, 32]},
            ],
            "report": {"min_items": 10},
            "seed": seed,
        }
    )
    return run_batch(resolve_run(request))


def _rows(ledger: Ledger, table: str, run_id: str) -> list[dict[str, Any]]:
    names, rows = ledger.query(f"SELECT * FROM {table} WHERE run_id = ? ORDER BY ALL", [run_id])
    return [dict(zip(names, row, strict=True)) for row in rows]


def _counts(ledger: Ledger, run_id: str) -> dict[str, int]:
    return {table: len(_rows(ledger, table, run_id)) for table in FIGURE_TABLES}


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, dict[str, Report]]:
    tmp = tmp_path_factory.mktemp("figures")
    reports = {}
    for run_id, seed in (("first", 1), ("second", 2)):
        result = _batch(tmp, run_id, seed)
        path = Path(result["report"]["json"].removeprefix("file://"))
        reports[run_id] = Report.model_validate_json(path.read_text())
    return str(tmp / "ledger.sqlite"), reports


def test_the_published_reports_figures_are_in_the_ledger(
    two_runs: tuple[str, dict[str, Report]],
) -> None:
    ledger_path, reports = two_runs
    seen: set[str] = set()
    with Ledger(ledger_path, read_only=True) as ledger:
        for run_id, report in reports.items():
            points = {
                (p["dataset"], p["language"], p["strategy"], p["budget"]): p
                for p in _rows(ledger, "report_curve_points", run_id)
            }
            expected = [(s, c) for s in report.slices for c in s.curves]
            assert len(points) == len(expected) > 0
            for piece, curve in expected:
                row = points[(piece.dataset, piece.language, curve.strategy, curve.budget)]
                assert row["accuracy"] == curve.accuracy
                assert (row["accuracy_low"], row["accuracy_high"]) == (
                    curve.accuracy_low,
                    curve.accuracy_high,
                )
                assert row["mean_completion_tokens"] == curve.mean_completion_tokens
                frontier = [tuple(c) for c in piece.frontier_configs]
                assert row["on_frontier"] == ((curve.strategy, curve.budget) in frontier)

            recommendations = _rows(ledger, "report_recommendations", run_id)
            for piece in report.slices:
                mine = [r for r in recommendations if r["language"] == piece.language]
                if not piece.recommendations:
                    # One row, no strategy, and the report's reason (and what is needed).
                    (row,) = mine
                    assert piece.withheld and row["withheld"] == piece.withheld
                    assert row["strategy"] is None and row["needed"] == piece.needed
                    seen.add("withheld")
                    continue
                assert sorted((r["rule"], r["strategy"], r["budget"]) for r in mine) == sorted(
                    (rec.rule, rec.strategy, rec.budget) for rec in piece.recommendations
                )
                for row in mine:
                    point = points[
                        (row["dataset"], row["language"], row["strategy"], row["budget"])
                    ]
                    assert row["accuracy"] == point["accuracy"]
                    assert (row["accuracy_low"], row["accuracy_high"]) == (
                        point["accuracy_low"],
                        point["accuracy_high"],
                    )
                    assert row["withheld"] is None
                seen.add("recommended")

            saturation = _rows(ledger, "report_saturation", run_id)
            fits = [(s, f) for s in report.slices for f in s.saturation]
            assert len(saturation) == len(fits) > 0
            for row in saturation:
                (fit,) = [
                    f
                    for s, f in fits
                    if (s.dataset, s.language, f.strategy)
                    == (row["dataset"], row["language"], row["strategy"])
                ]
                assert (row["f_max"], row["p"], row["saturation_point"]) == (
                    fit.f_max,
                    fit.p,
                    fit.saturation_point,
                )
                assert row["budgets"] == fit.budgets

            inverse = _rows(ledger, "report_inverse_scaling", run_id)
            findings = [(s, f) for s in report.slices for f in s.inverse_scaling]
            assert len(inverse) == len(findings) > 0
            for row in inverse:
                (finding,) = [
                    f
                    for s, f in findings
                    if (s.dataset, s.language, f.strategy)
                    == (row["dataset"], row["language"], row["strategy"])
                ]
                assert json.loads(row["pairwise_json"]) == [
                    t.model_dump(mode="json") for t in finding.pairwise
                ]
                assert row["cap_budget"] == finding.cap_budget
            (meta,) = _rows(ledger, "reports", run_id)
            assert meta["generated_at"] == report.generated_at
    # The runs are sized so that both cases occur (the small German slice is always withheld).
    assert seen == {"recommended", "withheld"}


def test_a_republished_report_replaces_its_runs_rows_only(
    two_runs: tuple[str, dict[str, Report]],
) -> None:
    ledger_path, _ = two_runs
    with Ledger(ledger_path) as ledger:
        before = {run: _counts(ledger, run) for run in ("first", "second")}
        second_rows = _rows(ledger, "report_recommendations", "second")
        report = build_report_from_ledger(
            ledger.con, "first", ReportSettings(tau=7.5, min_items=10)
        )
        written = ledger.record_report(report)
        ledger.record_report(report)  # twice: still one copy
        assert _counts(ledger, "first") == before["first"] == written
        thresholds = {r["threshold"] for r in _rows(ledger, "report_recommendations", "first")
                      if r["rule"] == "marginal_gain"}  # fmt: skip
        assert thresholds == {7.5}
        assert _rows(ledger, "report_recommendations", "second") == second_rows


def test_a_failed_figure_write_leaves_the_earlier_rows_whole(
    two_runs: tuple[str, dict[str, Report]], monkeypatch: pytest.MonkeyPatch
) -> None:
    ledger_path, _ = two_runs
    real = figures_module.figure_rows

    def broken(report: Report) -> dict[str, list[dict[str, Any]]]:
        rows = real(report)
        # The last table's rows cannot be inserted (NOT NULL), after the others were replaced.
        rows["report_inverse_scaling"][0]["strategy"] = None
        return rows

    with Ledger(ledger_path) as ledger:
        before = {table: _rows(ledger, table, "second") for table in FIGURE_TABLES}
        report = build_report_from_ledger(
            ledger.con, "second", ReportSettings(tau=9.0, min_items=10)
        )
        monkeypatch.setattr("ttscale.ledger.ledger.figure_rows", broken)
        with pytest.raises(LedgerError, match="recording the report's figures"):
            ledger.record_report(report)
        assert {table: _rows(ledger, table, "second") for table in FIGURE_TABLES} == before


def test_ttscale_report_republishes_the_figures(
    two_runs: tuple[str, dict[str, Report]], tmp_path: Path
) -> None:
    from typer.testing import CliRunner

    from ttscale.cli import app

    ledger_path, _ = two_runs
    with Ledger(ledger_path, read_only=True) as ledger:
        before = _counts(ledger, "first")
    args = ["report", "first", "--ledger", ledger_path, "--out", f"file://{tmp_path}"]
    result = CliRunner().invoke(app, [*args, "--tau", "4.25", "--min-items", "10"])
    assert result.exit_code == 0, result.output
    saved = Report.model_validate_json(
        (tmp_path / "runs" / "first" / "report" / "report.json").read_text()
    )
    with Ledger(ledger_path, read_only=True) as ledger:
        assert _counts(ledger, "first") == before
        (meta,) = _rows(ledger, "reports", "first")
        assert meta["generated_at"] == saved.generated_at
        assert json.loads(meta["settings_json"])["tau"] == 4.25
