"""Evidence guards on real ledgers: no recommendation without the evidence for one."""

from __future__ import annotations

from synthetic_ledger import synthetic_ledger

from ttscale.analysis.saturation import SaturationFit
from ttscale.analysis.synthetic import PlantedCurve, SyntheticLedgerSpec
from ttscale.ledger.report_data import build_report_from_ledger
from ttscale.reports import ReportSettings, render_markdown
from ttscale.reports.headline import cutoff_rows
from ttscale.reports.html import render_html
from ttscale.reports.tables import meaningful_fit, n_star_text


def _spec(items: int, f_max: float = 0.8, p: float = 0.4) -> SyntheticLedgerSpec:
    return SyntheticLedgerSpec(
        curves=(PlantedCurve("majority", (1, 2, 4, 8), f_max=f_max, p=p),),
        slices=(("gsm8k", "en"),),
        items_per_slice=items,
        seed=7,
    )


def test_a_ten_item_run_recommends_nothing_and_says_why(tmp_path) -> None:
    spec = _spec(10)
    report = build_report_from_ledger(synthetic_ledger(spec, tmp_path / "l.duckdb"), spec.run_id)
    (s,) = report.slices
    assert s.recommendations == []
    assert s.withheld is not None and "not enough evidence" in s.withheld
    assert "10 items" in s.withheld and s.needed == "at least 30 items (has 10)"
    markdown, html = render_markdown(report), render_html(report)
    assert "No recommendation" in markdown and "at least 30 items (has 10)" in markdown
    assert "No recommendation" in html and "at least 30 items (has 10)" in html
    assert "not enough evidence" in cutoff_rows(report)[0][-1]
    # Settable: with min_items 5 the same run would be judged on its spread instead.
    lowered = build_report_from_ledger(
        synthetic_ledger(spec, tmp_path / "m.duckdb"), spec.run_id, ReportSettings(min_items=5)
    )
    assert "items, fewer than" not in (lowered.slices[0].withheld or "")


def test_near_zero_accuracy_is_not_recommended(tmp_path) -> None:
    spec = _spec(60, f_max=0.005)
    report = build_report_from_ledger(synthetic_ledger(spec, tmp_path / "l.duckdb"), spec.run_id)
    (s,) = report.slices
    assert s.recommendations == [] and "near zero" in (s.withheld or "")
    assert "budgets beyond the largest tried (majority@8)" in (s.needed or "")


def test_indistinguishable_configurations_are_not_recommended(tmp_path) -> None:
    # A flat curve: p = 1 saturates at one sample, so every budget has the same accuracy.
    spec = _spec(40, f_max=0.6, p=1.0)
    report = build_report_from_ledger(synthetic_ledger(spec, tmp_path / "l.duckdb"), spec.run_id)
    (s,) = report.slices
    assert s.recommendations == [] and "indistinguishable" in (s.withheld or "")
    assert "CI" in (s.withheld or "")


def test_a_clear_curve_with_enough_items_is_recommended(tmp_path) -> None:
    spec = _spec(60)
    report = build_report_from_ledger(synthetic_ledger(spec, tmp_path / "l.duckdb"), spec.run_id)
    (s,) = report.slices
    assert s.withheld is None and {r.rule for r in s.recommendations} == {
        "marginal_gain",
        "utility",
    }


def _fit(p: float, n_star: float, budgets: list[int]) -> SaturationFit:
    return SaturationFit(
        strategy="majority",
        kind="parallel",
        unit="samples",
        f_max=0.8,
        p=p,
        epsilon=0.01,
        saturation_point=n_star,
        extrapolated=n_star > max(budgets),
        budgets=budgets,
        deviance=0.0,
    )


def test_saturation_claims_only_where_the_fit_means_something() -> None:
    assert not meaningful_fit(_fit(1.0, 1000, [1, 2, 4, 8]))  # the "N* 1000" of p = 1
    assert meaningful_fit(_fit(0.4, 6, [1, 2, 4, 8]))
    assert n_star_text(_fit(0.4, 6, [1, 2, 4, 8]), 4) == "6"
    assert n_star_text(_fit(0.1, 20, [1, 2, 4, 8]), 4) == "20 (extrapolated beyond 8)"
    assert n_star_text(_fit(0.01, 300, [1, 2, 4, 8]), 4) == (
        "> 32 (extrapolated past 4× the largest budget 8)"
    )


def test_p_equal_one_shows_no_n_star_in_the_report(tmp_path) -> None:
    spec = _spec(40, f_max=0.6, p=1.0)
    report = build_report_from_ledger(synthetic_ledger(spec, tmp_path / "l.duckdb"), spec.run_id)
    text = render_markdown(report)
    assert "(extrapolated)" not in text and "No meaningful fit." in text
