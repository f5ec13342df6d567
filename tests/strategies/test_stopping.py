"""Fidelity of the adaptive sample-count rules against values computed by hand or independently."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
from scipy import integrate, optimize, special, stats

from ttscale.strategies.stopping import (
    CAP,
    CONVERGED,
    N_STAR_REACHED,
    NO_ANSWERS,
    NOT_CONVERGED,
    SIGMA_BOUNDS,
    WINDOW_AGREED,
    WINDOW_DISAGREED,
    adaptive_consistency_should_stop,
    beta_stop_probability,
    dirichlet_stop_probability,
    esc_decisions,
    esc_should_stop,
    fit_truncnorm_map,
    fit_truncnorm_mle,
    marginal_gain,
    optscale_n_star,
    optscale_should_stop,
    saturation_point,
    truncnorm_cdf,
)

# --- Adaptive-Consistency: Beta ---------------------------------------------------------------
# For integers, I_x(a, b) = P(Binomial(a + b − 1, x) ≥ a), so with n = v1 + v2 + 1
# 1 − I_0.5(v1 + 1, v2 + 1) = P(Binomial(n, 1/2) ≤ v1) = Σ_{j ≤ v1} C(n, j) / 2^n.
#   v1=4, v2=0: n = 5, 1 − C(5,5)/32 = 31/32 = 0.96875 ≥ 0.95 → stop.
#   v1=3, v2=1: n = 5, (C(5,0)+C(5,1)+C(5,2)+C(5,3))/32 = (1+5+10+10)/32 = 26/32 = 0.8125 → go on.
#   v1=1, v2=0: n = 2, (1+2)/4 = 0.75.   v1=2, v2=1: n = 4, (1+4+6)/16 = 11/16 = 0.6875.


@pytest.mark.parametrize(
    ("v1", "v2", "expected"),
    [(4, 0, 31 / 32), (3, 1, 26 / 32), (1, 0, 3 / 4), (2, 1, 11 / 16), (0, 0, 1 / 2)],
)
def test_beta_probability_matches_binomial_identity(v1: int, v2: int, expected: float) -> None:
    assert beta_stop_probability(v1, v2) == pytest.approx(expected, abs=1e-12)


def test_beta_stops_at_four_nil_but_not_three_one() -> None:
    stop = adaptive_consistency_should_stop([4, 0], rule="beta")
    go_on = adaptive_consistency_should_stop([1, 3], rule="beta")  # order of counts is irrelevant
    assert (stop.stop, stop.reason, stop.statistic) == (True, CONVERGED, pytest.approx(0.96875))
    assert (go_on.stop, go_on.reason, go_on.statistic) == (
        False,
        NOT_CONVERGED,
        pytest.approx(0.8125),
    )


@pytest.mark.parametrize("votes", [0, 1, 3, 10, 40])
def test_beta_tie_is_a_coin_flip(votes: int) -> None:
    # The binomial sum over a symmetric Binomial(2v + 1, 1/2) up to v is exactly half.
    assert beta_stop_probability(votes, votes) == pytest.approx(0.5, abs=1e-12)


@pytest.mark.parametrize(("v1", "v2"), [(4, 0), (3, 1), (7, 2), (20, 19), (50, 3)])
def test_beta_swapping_leader_and_runner_up_complements(v1: int, v2: int) -> None:
    assert beta_stop_probability(v1, v2) + beta_stop_probability(v2, v1) == pytest.approx(1.0)
    n = v1 + v2 + 1
    assert beta_stop_probability(v1, v2) == pytest.approx(stats.binom.cdf(v1, n, 0.5), abs=1e-12)


def test_beta_rejects_negative_counts() -> None:
    with pytest.raises(ValueError):
        beta_stop_probability(-1, 0)


# --- Adaptive-Consistency: Dirichlet ----------------------------------------------------------


@pytest.mark.parametrize(("v1", "v2"), [(1, 0), (4, 0), (3, 1), (9, 4), (300, 250)])
def test_dirichlet_with_two_answers_is_the_beta_rule(v1: int, v2: int) -> None:
    assert dirichlet_stop_probability([v1, v2]) == pytest.approx(
        beta_stop_probability(v1, v2), abs=1e-9
    )


def test_single_answer_is_compared_with_an_unseen_runner_up() -> None:
    assert dirichlet_stop_probability([4]) == pytest.approx(31 / 32, abs=1e-9)


@pytest.mark.parametrize("k", [2, 3, 5])
def test_dirichlet_all_tied_gives_one_in_k(k: int) -> None:
    # Exchangeable shares: each answer is the largest with probability 1/k.
    assert dirichlet_stop_probability([2] * k) == pytest.approx(1 / k, abs=1e-9)


def _dirichlet_leader_by_simplex_quadrature(counts: tuple[int, int, int]) -> float:
    """P(p1 > p2, p1 > p3) by integrating the Dirichlet(counts + 1) density over the simplex."""
    alphas = np.asarray(counts, dtype=float) + 1.0
    log_norm = special.gammaln(alphas.sum()) - special.gammaln(alphas).sum()

    def density(p2: float, p1: float) -> float:
        p3 = max(1.0 - p1 - p2, 0.0)
        return math.exp(log_norm) * p1 ** counts[0] * p2 ** counts[1] * p3 ** counts[2]

    # p1 > p2 and p1 > p3 = 1 − p1 − p2  ⇔  1 − 2·p1 < p2 < p1, with p2 ≤ 1 − p1.
    value, _ = integrate.dblquad(
        density, 1 / 3, 1.0, lambda p1: max(0.0, 1 - 2 * p1), lambda p1: min(p1, 1 - p1)
    )
    return value


@pytest.mark.parametrize("counts", [(5, 1, 1), (2, 2, 1), (8, 1, 1), (3, 2, 0)])
def test_dirichlet_matches_simplex_quadrature(counts: tuple[int, int, int]) -> None:
    expected = _dirichlet_leader_by_simplex_quadrature(counts)
    assert dirichlet_stop_probability(counts) == pytest.approx(expected, abs=1e-6)


@pytest.mark.parametrize("counts", [(5, 1, 1), (2, 2, 1), (6, 3, 2, 1)])
def test_dirichlet_monte_carlo_within_four_standard_errors(counts: tuple[int, ...]) -> None:
    draws = 100_000
    exact = dirichlet_stop_probability(counts)
    estimate = dirichlet_stop_probability(counts, draws=draws, seed=7)
    standard_error = math.sqrt(exact * (1 - exact) / draws)
    assert abs(estimate - exact) < 4 * standard_error
    assert estimate == dirichlet_stop_probability(counts, draws=draws, seed=7)  # seeded


def test_dirichlet_concentrated_votes_stop_and_split_votes_do_not() -> None:
    clear = adaptive_consistency_should_stop([8, 1, 1])  # ≈ 0.979
    close = adaptive_consistency_should_stop([5, 1, 1])  # ≈ 0.888
    split = adaptive_consistency_should_stop([2, 2, 1])  # ≈ 0.414
    assert (clear.stop, clear.rule) == (True, "adaptive_consistency_dirichlet")
    assert not close.stop and not split.stop
    assert close.statistic is not None and split.statistic is not None
    assert close.statistic > 0.85 > 0.45 > split.statistic
    # A third competitor can only lower the leader's chance: below Beta on the top two (15/16).
    assert close.statistic < beta_stop_probability(5, 1)


def test_auto_rule_picks_beta_for_two_answers_and_dirichlet_for_three() -> None:
    two = adaptive_consistency_should_stop([3, 1])
    three = adaptive_consistency_should_stop([3, 1, 1])
    assert two.rule == "adaptive_consistency_beta"
    assert two.statistic == pytest.approx(26 / 32)
    assert three.rule == "adaptive_consistency_dirichlet"
    assert three.statistic == pytest.approx(dirichlet_stop_probability([3, 1, 1]))


def test_cap_no_answers_and_recorded_fields() -> None:
    capped = adaptive_consistency_should_stop([3, 1], max_samples=4)
    # Everything a ledger row needs, as plain data.
    assert dataclasses.asdict(capped) == {
        "stop": True,
        "reason": CAP,
        "statistic": pytest.approx(0.8125),
        "rule": "adaptive_consistency_beta",
        "threshold": 0.95,
        "samples_seen": 4,
    }
    assert not adaptive_consistency_should_stop([3, 1], max_samples=5).stop
    empty = adaptive_consistency_should_stop([])
    assert (empty.stop, empty.reason, empty.statistic) == (False, NO_ANSWERS, None)
    with pytest.raises(dataclasses.FrozenInstanceError):
        capped.stop = False  # type: ignore[misc]


# --- ESC ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("window", "expected"),
    [
        (["7", "7", "7", "7"], True),
        (["7", "7", "8", "7"], False),
        (["7", None, "7", "7"], False),
        ([None, None], False),
        ([], False),
        (["3"], True),
    ],
)
def test_esc_window_agreement(window: list[str | None], expected: bool) -> None:
    assert esc_should_stop(window) is expected


def test_esc_stops_at_the_first_agreeing_window() -> None:
    answers = ["1", "2", "1", "1", "5", "5", "5", "5", "9", "9", "9", "9"]
    decisions = esc_decisions(answers, window=4)
    assert [(d.stop, d.reason, d.samples_seen) for d in decisions] == [
        (False, WINDOW_DISAGREED, 4),
        (True, WINDOW_AGREED, 8),
    ]
    assert [d.statistic for d in decisions] == [0.75, 1.0]


def test_esc_cap_and_partial_window() -> None:
    answers = ["1", "2", "3", "4", "1", "1", "1"]
    # The trailing partial window ["1", "1", "1"] is not yet a decision.
    assert [d.samples_seen for d in esc_decisions(answers, window=4)] == [4]
    capped = esc_decisions(answers, window=4, max_samples=6)
    assert [(d.stop, d.reason, d.samples_seen) for d in capped] == [
        (False, WINDOW_DISAGREED, 4),
        (True, CAP, 6),
    ]
    assert esc_decisions([None] * 4, window=4)[0].statistic == 0.0


# --- OptScale -----------------------------------------------------------------------------------


def _truncnorm(mu: float, sigma: float) -> stats.rv_continuous:
    return stats.truncnorm((0 - mu) / sigma, (1 - mu) / sigma, loc=mu, scale=sigma)


def _loglik(scores: np.ndarray, mu: float, sigma: float) -> float:
    return float(_truncnorm(mu, sigma).logpdf(scores).sum())


@pytest.mark.parametrize(
    ("mu", "sigma"), [(0.7, 0.15), (0.3, 0.4), (0.9, 0.3), (1.2, 0.3), (0.5, 0.05)]
)
def test_mle_recovers_parameters(mu: float, sigma: float) -> None:
    scores = _truncnorm(mu, sigma).rvs(size=5000, random_state=np.random.default_rng(0))
    mu_hat, sigma_hat = fit_truncnorm_mle(scores)
    assert mu_hat == pytest.approx(mu, abs=0.04)
    assert sigma_hat == pytest.approx(sigma, abs=0.04)
    # A maximum: no nearby point, nor the truth, has a higher scipy log-likelihood.
    best = _loglik(scores, mu_hat, sigma_hat)
    assert best >= _loglik(scores, mu, sigma)
    for d_mu, d_sigma in [(0.01, 0), (-0.01, 0), (0, 0.005), (0, -0.005)]:
        assert best >= _loglik(scores, mu_hat + d_mu, sigma_hat + d_sigma)


@pytest.mark.parametrize("scores", [[0.4], [0.4, 0.4, 0.4]])
def test_mle_of_one_or_equal_scores_sits_on_the_sigma_bound(scores: list[float]) -> None:
    assert fit_truncnorm_mle(scores) == (0.4, SIGMA_BOUNDS[0])


@pytest.mark.parametrize("scores", [[], [0.5, 1.2], [-0.1]])
def test_fits_reject_empty_or_out_of_range_scores(scores: list[float]) -> None:
    with pytest.raises(ValueError):
        fit_truncnorm_mle(scores)


def test_map_shrinks_to_prior_with_few_scores_and_to_mle_with_many() -> None:
    scores = _truncnorm(0.8, 0.1).rvs(size=5000, random_state=np.random.default_rng(1))
    prior_mu, prior_sigma = 0.4, 0.2
    few = scores[:3]
    mle_few = fit_truncnorm_mle(few)
    map_few = fit_truncnorm_map(few, prior_mu, prior_sigma)
    strong = fit_truncnorm_map(few, prior_mu, prior_sigma, prior_strength=100)
    assert abs(map_few[0] - prior_mu) < abs(mle_few[0] - prior_mu)
    assert prior_mu < map_few[0] < mle_few[0]
    assert abs(strong[0] - prior_mu) < abs(map_few[0] - prior_mu)
    assert strong[1] == pytest.approx(prior_sigma, rel=0.3)
    mle_all = fit_truncnorm_mle(scores)
    map_all = fit_truncnorm_map(scores, prior_mu, prior_sigma)
    assert map_all == pytest.approx(mle_all, abs=0.01)
    # One score has no finite MLE but a finite MAP.
    assert fit_truncnorm_map([0.9], prior_mu, prior_sigma)[1] > 0.05


def test_map_is_the_mode_of_the_documented_posterior() -> None:
    # Posterior = scipy truncnorm likelihood × Normal(μ; 0.4, 0.2/√4) × LogNormal(σ; 0.2, 1/√8),
    # maximised independently by Nelder–Mead.
    scores = np.array([0.9, 0.75, 0.95])
    prior_mu, prior_sigma, strength = 0.4, 0.2, 4.0
    mu_prior = stats.norm(prior_mu, prior_sigma / math.sqrt(strength))
    sigma_prior = stats.lognorm(s=1 / math.sqrt(2 * strength), scale=prior_sigma)

    def negative_log_posterior(params: np.ndarray) -> float:
        mu, sigma = float(params[0]), float(params[1])
        if sigma <= 0:
            return math.inf
        return -(_loglik(scores, mu, sigma) + mu_prior.logpdf(mu) + sigma_prior.logpdf(sigma))

    reference = optimize.minimize(
        negative_log_posterior,
        [prior_mu, prior_sigma],
        method="Nelder-Mead",
        options={"xatol": 1e-8, "fatol": 1e-10},
    )
    assert fit_truncnorm_map(scores, prior_mu, prior_sigma, strength) == pytest.approx(
        tuple(reference.x), abs=1e-4
    )


@pytest.mark.parametrize("s", [-0.5, 0.0, 0.3, 0.75, 1.0, 2.0])
def test_truncnorm_cdf_matches_scipy(s: float) -> None:
    expected = float(np.clip(_truncnorm(0.6, 0.2).cdf(s), 0.0, 1.0))
    assert truncnorm_cdf(s, 0.6, 0.2) == pytest.approx(expected, abs=1e-12)


def _smallest_n(below: float, q: float) -> int:
    n = 1
    while below**n > q:
        n += 1
    return n


@pytest.mark.parametrize(
    ("mu", "sigma", "s_star", "q"),
    [(0.5, 0.2, 0.8, 0.05), (0.3, 0.3, 0.7, 0.1), (0.8, 0.1, 0.85, 0.01), (0.6, 0.25, 0.5, 0.2)],
)
def test_n_star_is_the_smallest_n_reaching_confidence(
    mu: float, sigma: float, s_star: float, q: float
) -> None:
    below = float(_truncnorm(mu, sigma).cdf(s_star))
    expected = _smallest_n(below, q)
    assert optscale_n_star(mu, sigma, s_star, q, k=1, n_max=10_000) == expected
    # F(s*)^N ≤ q < F(s*)^(N − 1): P(some score > s*) ≥ 1 − q first at N*.
    assert below**expected <= q < below ** (expected - 1)


def test_n_star_clipping_and_degenerate_cdf() -> None:
    # a = −2.5, b = 2.5, z(0.8) = 1.5: F = (Φ(1.5) − Φ(−2.5)) / (Φ(2.5) − Φ(−2.5))
    #   = (0.933193 − 0.006210) / (0.993790 − 0.006210) = 0.938640;
    # N* = ⌈ln 0.05 / ln 0.938640⌉ = ⌈−2.995732 / −0.063324⌉ = ⌈47.31⌉ = 48.
    assert optscale_n_star(0.5, 0.2, 0.8, 0.05, k=1, n_max=64) == 48
    assert optscale_n_star(0.5, 0.2, 0.8, 0.05, k=1, n_max=16) == 16
    assert (
        optscale_n_star(0.5, 0.2, 0.3, 0.05, k=8, n_max=64) == 8
    )  # F = 0.154, N* = ⌈1.60⌉ = 2 < k
    assert optscale_n_star(0.5, 0.2, 0.0, 0.05, k=4, n_max=64) == 4  # F = 0: any score beats s*
    assert optscale_n_star(0.5, 0.2, 1.0, 0.05, k=4, n_max=64) == 64  # F = 1: none can
    with pytest.raises(ValueError):
        optscale_n_star(0.5, 0.2, 0.8, 1.0, k=1, n_max=64)


def test_optscale_decisions() -> None:
    assert optscale_should_stop(4, n_star=8, n_max=64).stop is False
    reached = optscale_should_stop(8, n_star=8, n_max=64)
    assert (reached.stop, reached.reason, reached.statistic) == (True, N_STAR_REACHED, 8.0)
    assert optscale_should_stop(64, n_star=100, n_max=64).reason == CAP


# --- TTSPM saturation ---------------------------------------------------------------------------


def test_saturation_point_by_hand() -> None:
    # F_max·p = 0.8 · 0.3 = 0.24; ln(0.01/0.24) = ln 0.041667 = −3.17805; ln 0.7 = −0.356675;
    # ratio 8.9102 → N* = 9. Gains: 0.24 · 0.7^9 = 0.009685 ≤ 0.01 < 0.24 · 0.7^8 = 0.013836.
    assert saturation_point(0.8, 0.3, 0.01) == 9
    assert marginal_gain(0.8, 0.3, 9) == pytest.approx(0.24 * 0.7**9)
    assert marginal_gain(0.8, 0.3, 9) <= 0.01 < marginal_gain(0.8, 0.3, 8)


def test_saturation_exact_integer_ratio_is_not_rounded_up() -> None:
    # F_max·p = 0.5, ε/(F_max·p) = 0.25 = 0.5^2 → N* = 2 exactly; gain(2) = 0.125 = ε.
    assert saturation_point(1.0, 0.5, 0.125) == 2


@pytest.mark.parametrize(
    ("f_max", "p", "epsilon"), [(0.8, 0.3, 0.01), (0.95, 0.05, 0.001), (0.6, 0.7, 0.02)]
)
def test_saturation_brackets_the_marginal_gain(f_max: float, p: float, epsilon: float) -> None:
    n_star = saturation_point(f_max, p, epsilon)
    assert n_star >= 1
    assert marginal_gain(f_max, p, n_star) <= epsilon < marginal_gain(f_max, p, n_star - 1)


def test_saturation_edges() -> None:
    assert saturation_point(0.8, 0.3, 0.24) == 0  # ε ≥ F_max·p
    assert saturation_point(0.8, 1.0, 0.01) == 1
    with pytest.raises(ValueError):
        saturation_point(0.8, 0.0, 0.01)
