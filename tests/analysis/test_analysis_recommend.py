from __future__ import annotations

from synthetic_ledger import synthetic_ledger

from ttscale.analysis.synthetic import PlantedCurve, SyntheticLedgerSpec
from ttscale.ledger.report_data import build_report_from_ledger
from ttscale.reports.model import ReportSettings


def _report(tmp_path, budgets: tuple[int, ...], settings: ReportSettings | None = None):
    spec = SyntheticLedgerSpec(
        curves=(PlantedCurve("majority", budgets, f_max=0.8, p=0.5, tokens_per_sample=300),),
        items_per_slice=2000,
        seed=21,
    )
    con = synthetic_ledger(spec)  # a fresh temporary lake: one test builds several ledgers
    return build_report_from_ledger(con, spec.run_id, settings)


def test_cutoff_lands_where_the_true_marginal_gain_falls_below_tau(tmp_path) -> None:
    # True gains per 1k tokens: 1→2 ≈ 67, 2→4 ≈ 25, 4→8 ≈ 3.9, 8→16 ≈ 0.13, 16→32 ≈ 0.
    report = _report(tmp_path, (1, 2, 4, 8, 16, 32))
    by_rule = {r.rule: r for r in report.slices[0].recommendations}
    gain = by_rule["marginal_gain"]
    assert (gain.strategy, gain.budget) == ("majority", 8)
    assert gain.plateau_reached and not gain.capped_by_decline
    assert abs(sum(d.share for d in gain.distribution) - 1) < 1e-9
    assert {d.budget for d in gain.distribution} <= {4, 8, 16}
    # λ = τ by default: the utility rule picks the same knee on point estimates.
    assert by_rule["utility"].budget == 8


def test_no_plateau_is_reported_when_budgets_stop_too_early(tmp_path) -> None:
    report = _report(tmp_path, (1, 2, 4))
    gain = next(r for r in report.slices[0].recommendations if r.rule == "marginal_gain")
    assert gain.budget == 4 and not gain.plateau_reached


def test_a_valuable_answer_buys_more_compute(tmp_path) -> None:
    cheap = ReportSettings(price_per_million_tokens=10.0, value_per_correct=0.001)
    dear = ReportSettings(price_per_million_tokens=10.0, value_per_correct=10.0)
    pick = {}
    for name, settings in (("cheap", cheap), ("dear", dear)):
        recommendations = _report(tmp_path, (1, 2, 4, 8, 16), settings).slices[0].recommendations
        pick[name] = next(r.budget for r in recommendations if r.rule == "utility")
    assert pick["cheap"] < pick["dear"]
