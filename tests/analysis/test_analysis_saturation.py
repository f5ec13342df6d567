from __future__ import annotations

import math

import numpy as np
import pytest
from synthetic_ledger import synthetic_ledger

from ttscale.analysis.saturation import fit_saturation_curve, fit_strategy, saturation_point
from ttscale.analysis.synthetic import PlantedCurve, SyntheticLedgerSpec
from ttscale.ledger.report_data import build_report_from_ledger
from ttscale.reports.model import ReportSettings


def test_saturation_point_closed_form() -> None:
    # ⌈ln(0.01 / 0.24) / ln 0.7⌉ = ⌈8.91⌉
    assert saturation_point(0.8, 0.3, 0.01) == 9
    assert saturation_point(0.5, 0.01, 0.2) == 0


def test_fit_recovers_parameters_from_exact_counts() -> None:
    x = np.array([1, 2, 4, 8, 16, 32], dtype=float)
    items = np.full(6, 100_000)
    correct = np.round(items * 0.8 * (1 - 0.7**x))
    f_max, p, deviance = fit_saturation_curve(x, correct, items)
    assert f_max == pytest.approx(0.8, abs=1e-3)
    assert p == pytest.approx(0.3, abs=1e-3)
    assert deviance < 1.0


def test_fit_on_token_budgets_uses_kilotokens() -> None:
    budgets = [256, 512, 1024, 2048, 4096]
    items = [50_000] * 5
    correct = [round(50_000 * 0.6 * (1 - 0.5 ** (b / 1000))) for b in budgets]
    fit = fit_strategy("budget_forcing", budgets, correct, items, epsilon=0.01)
    assert fit is not None and fit.kind == "sequential"
    assert fit.p == pytest.approx(0.5, abs=0.01)
    # Per kilotoken: ⌈ln(ε / (F_max·p)) / ln(1 − p)⌉ = ⌈ln(0.01 / 0.3) / ln 0.5⌉ = ⌈4.91⌉ = 5.
    assert fit.saturation_point == 5000
    by_hand = math.ceil(math.log(0.01 / (fit.f_max * fit.p)) / math.log(1 - fit.p))
    assert fit.saturation_point == 1000 * by_hand


def test_known_saturation_point_is_recovered_from_a_ledger(tmp_path) -> None:
    spec = SyntheticLedgerSpec(
        curves=(PlantedCurve("majority", (1, 2, 4, 8, 16, 32), f_max=0.8, p=0.3),),
        items_per_slice=3000,
        seed=11,
    )
    con = synthetic_ledger(spec, tmp_path / "l.duckdb")
    report = build_report_from_ledger(con, spec.run_id, ReportSettings(epsilon=0.01))
    (fit,) = report.slices[0].saturation
    true_n_star = 9  # ⌈ln(0.01 / 0.24) / ln 0.7⌉ = ⌈8.91⌉, as in test_saturation_point_closed_form
    assert abs(fit.saturation_point - true_n_star) <= 1
    assert fit.f_max == pytest.approx(0.8, abs=0.03)
    assert not math.isnan(fit.deviance)
