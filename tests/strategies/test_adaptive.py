"""Adaptive sample counts on the scripted engine: rounds, stop reasons, discarded samples."""

from __future__ import annotations

import pytest
from strategy_helpers import CountingEngine, assert_accounted, question, run

from ttscale.strategies.config import AdaptiveConsistencyConfig, ESCConfig, OptScaleConfig
from ttscale.strategies.stopping import (
    fit_truncnorm_map,
    fit_truncnorm_mle,
    optscale_n_star,
)


def test_adaptive_consistency_stops_at_four_agreeing_votes() -> None:
    # Beta rule: 4-0 gives P = 31/32 ≥ 0.95, 3-0 only 15/16; rounds of 3 draw 6, keep 4.
    engine = CountingEngine(accuracy=1.0)
    record = run(engine, AdaptiveConsistencyConfig(n=[16], round_size=3), 16)
    assert_accounted(record, engine)
    assert record["stop_reason"] == "converged"
    assert record["samples_used"] == 4
    assert record["correct"]
    used = {c["sample_index"]: c["used"] for c in record["calls"]}
    assert used == {0: True, 1: True, 2: True, 3: True, 4: False, 5: False}
    assert record["detail"]["decision"]["statistic"] == pytest.approx(31 / 32)
    assert record["detail"]["samples_drawn"] == 6


def test_adaptive_consistency_uses_more_samples_on_hard_items() -> None:
    config = AdaptiveConsistencyConfig(n=[32], round_size=2)
    easy = [run(CountingEngine(1.0), config, 32, question(i))["samples_used"] for i in range(6)]
    hard = [run(CountingEngine(0.4), config, 32, question(i))["samples_used"] for i in range(6)]
    assert easy == [4] * 6
    assert sum(hard) > 2 * sum(easy)


def test_adaptive_consistency_saves_tokens_against_fixed_n() -> None:
    adaptive = CountingEngine(1.0)
    run(adaptive, AdaptiveConsistencyConfig(n=[16], round_size=2), 16)
    fixed = CountingEngine(1.0)
    run(fixed, AdaptiveConsistencyConfig(n=[16], round_size=16, threshold=1.0), 16)
    assert len(adaptive.prompts) == 4 and len(fixed.prompts) == 16
    assert adaptive.produced_tokens < fixed.produced_tokens / 2


def test_adaptive_consistency_caps_when_never_converged() -> None:
    # Three votes can never reach 0.95 under the Beta rule (3-0 gives 15/16).
    engine = CountingEngine(accuracy=1.0)
    record = run(engine, AdaptiveConsistencyConfig(n=[3], round_size=2), 3)
    assert_accounted(record, engine)
    assert record["stop_reason"] == "cap"
    assert record["samples_used"] == 3
    assert all(c["used"] for c in record["calls"])


def test_adaptive_consistency_survives_recoverable_failures() -> None:
    engine = CountingEngine(accuracy=1.0, fail_every=3)
    record = run(engine, AdaptiveConsistencyConfig(n=[16], round_size=2), 16)
    assert_accounted(record, engine)
    assert engine.attempts > len(record["calls"])  # failed attempts produced no tokens
    assert record["stop_reason"] == "converged"


def test_esc_stops_on_first_agreeing_window_and_goes_on_otherwise() -> None:
    engine = CountingEngine(accuracy=1.0)
    record = run(engine, ESCConfig(n=[16], window=4), 16)
    assert_accounted(record, engine)
    assert (record["stop_reason"], record["samples_used"]) == ("window_agreed", 4)
    hard = [
        run(CountingEngine(0.4), ESCConfig(n=[16], window=4), 16, question(i)) for i in range(6)
    ]
    assert all(r["samples_used"] % 4 == 0 for r in hard)
    assert {r["stop_reason"] for r in hard} <= {"window_agreed", "cap"}
    assert sum(r["samples_used"] for r in hard) > 6 * 4
    for r in hard:
        if r["stop_reason"] == "cap":
            assert r["samples_used"] == 16


def test_esc_cap_mid_window() -> None:
    record = run(CountingEngine(0.0), ESCConfig(n=[6], window=4), 6)
    assert record["samples_used"] in (4, 6)
    if record["samples_used"] == 6:
        assert record["stop_reason"] == "cap"


def test_optscale_fit_and_n_star_match_the_formulas() -> None:
    engine = CountingEngine(accuracy=0.6, vary_logprobs=True)
    config = OptScaleConfig(n=[32], k=4, q=0.1, s_star=0.5)
    record = run(engine, config, 32)
    assert_accounted(record, engine)
    calls = sorted(record["calls"], key=lambda c: c["sample_index"])
    first = [c["score"] for c in calls[:4]]
    mu, sigma = fit_truncnorm_mle(first)
    detail = record["detail"]
    assert (detail["mu"], detail["sigma"]) == pytest.approx((mu, sigma), rel=1e-6)
    n_star = optscale_n_star(mu, sigma, 0.5, 0.1, 4, 10**9)
    assert detail["n_star"] == n_star
    assert record["samples_used"] == min(n_star, 32) == len(calls)
    assert record["stop_reason"] == ("n_star_reached" if n_star <= 32 else "cap")
    # best-of: one kept, the rest discarded; the kept one has the highest score.
    kept = [c for c in calls if c["used"]]
    assert len(kept) == 1
    assert kept[0]["score"] == max(c["score"] for c in calls if c["extracted_answer"])


def test_optscale_map_fit_with_priors() -> None:
    engine = CountingEngine(accuracy=0.6, vary_logprobs=True)
    config = OptScaleConfig(n=[16], k=3, prior_mu=0.6, prior_sigma=0.2, select="weighted_vote")
    record = run(engine, config, 16)
    assert_accounted(record, engine)
    scores = [c["score"] for c in sorted(record["calls"], key=lambda c: c["sample_index"])][:3]
    mu, sigma = fit_truncnorm_map(scores, 0.6, 0.2, 4.0)
    assert record["detail"]["fit"] == "map"
    assert record["detail"]["mu"] == pytest.approx(mu, rel=1e-6)
    assert record["detail"]["sigma"] == pytest.approx(sigma, rel=1e-6)
    assert all(c["used"] for c in record["calls"])


@pytest.mark.parametrize(
    ("s_star", "reason", "used"), [(0.5, "n_star_reached", 4), (0.99, "cap", 8)]
)
def test_optscale_equal_scores(s_star: float, reason: str, used: int) -> None:
    # Constant mean logprob -0.1: every score is e^-0.1 ≈ 0.905, σ̂ hits its lower bound, so
    # F(s*) is 0 below the scores (N* = k) and 1 above them (N* unbounded → cap).
    record = run(CountingEngine(1.0), OptScaleConfig(n=[8], k=4, s_star=s_star), 8)
    assert (record["stop_reason"], record["samples_used"]) == (reason, used)


def test_config_validation() -> None:
    with pytest.raises(ValueError):
        OptScaleConfig(prior_mu=0.5)
    with pytest.raises(ValueError):
        AdaptiveConsistencyConfig(n=[4, 4])
    assert AdaptiveConsistencyConfig(n=[8, 2]).budgets() == [2, 8]
