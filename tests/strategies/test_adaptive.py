"""Adaptive sample counts on the scripted engine: rounds, stop reasons, discarded samples."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np
import pytest
from scipy import optimize, stats
from strategy_helpers import CountingEngine, assert_accounted, question, run

from ttscale.strategies.kinds.adaptive_consistency import AdaptiveConsistencyConfig
from ttscale.strategies.kinds.esc import ESCConfig
from ttscale.strategies.kinds.optscale import OptScaleConfig
from ttscale.strategies.stopping import beta_stop_probability, esc_decisions

# --- independent oracles: scipy's distributions, not ttscale.strategies.stopping -------------------


def _truncnorm_loglik(scores: Sequence[float], mu: float, sigma: float) -> float:
    """Σ log pdf of Normal(μ, σ) truncated to [0, 1], by scipy.stats.truncnorm."""
    a, b = (0.0 - mu) / sigma, (1.0 - mu) / sigma
    return float(stats.truncnorm.logpdf(np.asarray(scores), a, b, loc=mu, scale=sigma).sum())


def _oracle_fit(
    scores: Sequence[float], log_prior: Callable[[float, float], float] | None = None
) -> tuple[float, float]:
    """argmax over μ ∈ [−10, 11], σ ∈ [1e-3, 10] of the log-likelihood (+ log prior), by
    Nelder-Mead from several starts on (μ, ln σ)."""

    def objective(point: np.ndarray) -> float:
        mu, sigma = float(point[0]), math.exp(point[1])
        value = _truncnorm_loglik(scores, mu, sigma)
        if log_prior is not None:
            value += log_prior(mu, sigma)
        return -value

    starts = [(m, math.log(s)) for m in (float(np.mean(scores)), 0.5) for s in (0.05, 0.3)]
    bounds = [(-10.0, 11.0), (math.log(1e-3), math.log(10.0))]
    options = {"xatol": 1e-10, "fatol": 1e-13, "maxiter": 20_000}
    fits = [
        optimize.minimize(objective, start, method="Nelder-Mead", bounds=bounds, options=options)
        for start in starts
    ]
    best = min(fits, key=lambda fit: fit.fun)
    return float(best.x[0]), math.exp(best.x[1])


def _oracle_n_star(mu: float, sigma: float, s_star: float, q: float) -> int:
    """N* = ⌈ln q / ln F(s*; μ, σ)⌉ (OptScale), F from scipy.stats.truncnorm."""
    below = stats.truncnorm.cdf(s_star, -mu / sigma, (1.0 - mu) / sigma, loc=mu, scale=sigma)
    return math.ceil(math.log(q) / math.log(below))


def _esc_by_hand(answers: Sequence[str | None], window: int, cap: int) -> tuple[str, int]:
    """(stop reason, samples used) of ESC: the first all-equal window stops it, else the cap."""
    for end in range(window, cap + 1, window):
        chunk = answers[end - window : end]
        if None not in chunk and len(set(chunk)) == 1:
            return "window_agreed", end
    return "cap", cap


def _answers(record: dict) -> list[str | None]:
    return [c["extracted_answer"] for c in sorted(record["calls"], key=lambda c: c["sample_index"])]


@pytest.mark.parametrize(
    ("v1", "v2", "by_hand"),
    [(1, 0, 3 / 4), (3, 0, 15 / 16), (4, 0, 31 / 32), (2, 1, 11 / 16), (5, 5, 1 / 2)],
)
def test_beta_stop_probability_matches_scipy_and_hand_values(
    v1: int, v2: int, by_hand: float
) -> None:
    # P(p1 > p2) = P(X > 1/2) for X ~ Beta(v1 + 1, v2 + 1); e.g. 2-1: 1 − I_½(3, 2) = 1 − 5/16.
    assert stats.beta.sf(0.5, v1 + 1, v2 + 1) == pytest.approx(by_hand, abs=1e-12)
    assert beta_stop_probability(v1, v2) == pytest.approx(by_hand, abs=1e-12)


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
    # 1 − ½^(v+1) after v agreeing votes: 3/4, 7/8, 15/16, 31/32.
    assert record["detail"]["stop_probability_trace"] == pytest.approx(
        [3 / 4, 7 / 8, 15 / 16, 31 / 32]
    )
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
    for r in hard:  # each item's reason and count, by hand from its recorded answers
        expected = _esc_by_hand(_answers(r), window=4, cap=16)
        assert (r["stop_reason"], r["samples_used"]) == expected
        assert len(r["calls"]) == expected[1]
    reasons = {r["stop_reason"] for r in hard}
    assert reasons == {"window_agreed", "cap"}  # both paths taken on these six items
    assert sum(r["samples_used"] for r in hard) > 6 * 4


def test_esc_decisions_on_a_hand_built_sequence() -> None:
    answers = ["1", "2", "1", "1", "3", None, "3", "3", "5", "5", "5", "5"]
    decisions = esc_decisions(answers, window=4)
    # 3 of 4 say "1"; the unparsed answer never agrees (3 of 4 again); the third window agrees.
    assert [(d.stop, d.reason, d.statistic, d.samples_seen) for d in decisions] == [
        (False, "window_disagreed", 0.75, 4),
        (False, "window_disagreed", 0.75, 8),
        (True, "window_agreed", 1.0, 12),
    ]
    capped = esc_decisions(answers, window=4, max_samples=6)
    assert [(d.stop, d.reason, d.statistic, d.samples_seen) for d in capped] == [
        (False, "window_disagreed", 0.75, 4),
        (True, "cap", 0.5, 6),  # mid-window cap: "3" holds 1 of the 2 answers so far
    ]


def test_esc_cap_mid_window() -> None:
    record = run(CountingEngine(0.0), ESCConfig(n=[6], window=4), 6)
    answers = _answers(record)
    # Recorded answers 29 32 34 32 | 30 34: the first window disagrees, the cap cuts the second.
    assert answers == ["29", "32", "34", "32", "30", "34"]
    assert (record["stop_reason"], record["samples_used"]) == ("cap", 6)
    assert _esc_by_hand(answers, window=4, cap=6) == ("cap", 6)
    # "32" holds 2 of the first 4; in the cut window each answer holds 1 of 2.
    assert record["detail"]["window_shares"] == [0.5, 0.5]


@pytest.mark.parametrize(
    ("s_star", "n_star", "reason", "used"),
    [(0.5, 81, "cap", 32), (0.4, 11, "n_star_reached", 11)],
)
def test_optscale_fit_and_n_star_match_the_formulas(
    s_star: float, n_star: int, reason: str, used: int
) -> None:
    engine = CountingEngine(accuracy=0.6, vary_logprobs=True)
    config = OptScaleConfig(n=[32], k=4, q=0.1, s_star=s_star)
    record = run(engine, config, 32)
    assert_accounted(record, engine)
    calls = sorted(record["calls"], key=lambda c: c["sample_index"])
    first = [c["score"] for c in calls[:4]]
    mu, sigma = _oracle_fit(first)
    detail = record["detail"]
    assert (detail["mu"], detail["sigma"]) == pytest.approx((mu, sigma), rel=1e-4)
    # The recorded fit is the maximum: no worse than scipy's (to optimiser noise).
    assert _truncnorm_loglik(first, detail["mu"], detail["sigma"]) >= (
        _truncnorm_loglik(first, mu, sigma) - 1e-7
    )
    assert _oracle_n_star(mu, sigma, s_star, 0.1) == n_star  # the pinned value, re-derived
    assert detail["n_star"] == n_star
    assert (record["stop_reason"], record["samples_used"], len(calls)) == (reason, used, used)
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

    def log_prior(mu: float, sigma: float) -> float:
        # n0 = 4 pseudo-observations: μ ~ Normal(0.6, 0.2/√4), σ ~ LogNormal(ln 0.2, 1/√8).
        return float(
            stats.norm.logpdf(mu, 0.6, 0.2 / 2.0)
            + stats.lognorm.logpdf(sigma, s=1 / math.sqrt(8.0), scale=0.2)
        )

    mu, sigma = _oracle_fit(scores, log_prior)
    assert record["detail"]["fit"] == "map"
    assert record["detail"]["mu"] == pytest.approx(mu, rel=1e-4)
    assert record["detail"]["sigma"] == pytest.approx(sigma, rel=1e-4)
    n_star = _oracle_n_star(mu, sigma, config.s_star, config.q)
    assert record["detail"]["n_star"] == n_star > 16
    assert (record["stop_reason"], record["samples_used"]) == ("cap", 16)
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
