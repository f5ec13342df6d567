from __future__ import annotations

import numpy as np
import pytest
from synthetic_ledger import synthetic_ledger

from ttscale.analysis.inverse import (
    holm_adjust,
    mcnemar_decline_p,
    run_decline_tests,
    trend_decline_p,
)
from ttscale.analysis.synthetic import PlantedCurve, SyntheticLedgerSpec, planted_outcomes
from ttscale.ledger.report_data import build_report_from_ledger

ALPHA = 0.05


def test_exact_mcnemar_and_holm() -> None:
    # P(X ≥ 8 | n = 10, 1/2) = 56 / 1024
    assert float(mcnemar_decline_p(np.array(8), np.array(2))) == pytest.approx(56 / 1024)
    assert float(mcnemar_decline_p(np.array(0), np.array(0))) == 1.0
    assert holm_adjust([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])


def test_trend_test_sees_a_decline_in_realised_tokens() -> None:
    rng = np.random.default_rng(0)
    tokens = np.sort(rng.integers(100, 5000, size=(300, 4)), axis=1).astype(float)
    correct = (rng.random((300, 4)) < [0.7, 0.6, 0.5, 0.4]).astype(float)
    assert trend_decline_p(tokens, correct, 2000, seed=1) < 0.001
    assert trend_decline_p(tokens, correct[:, ::-1], 2000, seed=1) > 0.5


def _null_ledger_flags(seed: int) -> bool:
    """One null slice (two strategies, no decline): does any Holm-adjusted test fire?"""
    rng = np.random.default_rng(seed)
    p_values = []
    # Flat accuracy with item difficulty: outcomes exchangeable across budgets (exact null).
    items, budgets = 200, [256, 512, 1024, 2048]
    difficulty = rng.beta(2, 2, size=items)
    correct = (rng.random((items, len(budgets))) < difficulty[:, None]).astype(float)
    natural = rng.gamma(4, 400, size=items)
    tokens = np.minimum(natural[:, None], np.array(budgets, float)[None, :])
    pairwise, trend = run_decline_tests("budget_forcing", budgets, correct, tokens, "t", 400, seed)
    p_values += [t.p_value for t in pairwise] + ([trend.p_value] if trend else [])
    # A saturating planted curve, rising then flat.
    curve = PlantedCurve("majority", (1, 2, 4, 8), f_max=0.7, p=0.5)
    outcome = planted_outcomes(curve, items, rng)
    pairwise, trend = run_decline_tests(
        "majority", list(curve.budgets), outcome.correct, outcome.thinking_tokens, "t", 400, seed
    )
    p_values += [t.p_value for t in pairwise] + ([trend.p_value] if trend else [])
    return min(holm_adjust(p_values)) < ALPHA


def test_false_alarm_rate_over_200_null_ledgers() -> None:
    false_alarms = sum(_null_ledger_flags(seed) for seed in range(200))
    assert false_alarms / 200 <= 0.05


def test_planted_decline_is_flagged_and_the_recommendation_stops_before_it(tmp_path) -> None:
    spec = SyntheticLedgerSpec(
        curves=(
            PlantedCurve(
                "majority", (1, 2, 4, 8, 16), f_max=0.85, p=0.6, decline_after=4, decline_rate=0.3
            ),
            PlantedCurve(
                "budget_forcing",
                (256, 512, 1024, 2048, 4096),
                f_max=0.8,
                p=0.95,
                decline_after=1024,
                decline_rate=0.35,
                tokens_per_sample=3000,
            ),
        ),
        slices=(("gsm8k", "en"), ("mgsm", "de")),
        items_per_slice=400,
        seed=5,
    )
    con = synthetic_ledger(spec, tmp_path / "l.duckdb")
    report = build_report_from_ledger(con, spec.run_id)
    limits = {"majority": 4, "budget_forcing": 1024}
    for s in report.slices:
        caps = {f.strategy: f.cap_budget for f in s.inverse_scaling}
        for strategy, limit in limits.items():
            assert caps[strategy] is not None and caps[strategy] <= limit, (s.language, caps)
        for recommendation in s.recommendations:
            assert recommendation.budget <= limits[recommendation.strategy]
            for share in recommendation.distribution:
                assert share.budget <= limits[share.strategy]


@pytest.mark.parametrize("decline", [0.0, 0.004, 0.01, 0.03])
def test_normal_limit_of_the_trend_test_agrees_with_the_permutations(decline: float) -> None:
    # 4,000 items, 3 budgets: from no decline to a clear one. Both p-values are of the same
    # permutation null; the resampled one is within ~±0.02 of it (2000 resamples).
    rng = np.random.default_rng(int(decline * 1000))
    items = 4_000
    tokens = np.sort(rng.gamma(3, 300, size=(items, 3)), axis=1)
    difficulty = rng.random(items)[:, None]
    correct = (rng.random((items, 3)) < difficulty - decline * np.arange(3)).astype(float)
    exact = trend_decline_p(tokens, correct, 2000, seed=2, exact_max_items=10**9)
    normal = trend_decline_p(tokens, correct, 2000, seed=2, exact_max_items=100)
    assert normal == pytest.approx(exact, abs=0.025 + 0.1 * exact)
    if decline == 0.03:
        assert normal < 0.01
