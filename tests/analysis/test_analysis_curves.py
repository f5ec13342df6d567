from __future__ import annotations

import itertools

import numpy as np
import pytest

from ttscale.analysis.curves import Pricing, cluster_bootstrap_means, percentile_interval
from ttscale.analysis.frontier import chord_gains, frontier_order
from ttscale.analysis.recommend import replicate_marginal_gain_choices, utility_choice


def test_bootstrap_is_seeded_and_covers_the_mean() -> None:
    rng = np.random.default_rng(1)
    correct = (rng.random((400, 3)) < [0.3, 0.5, 0.7]).astype(float)
    present = np.ones_like(correct, dtype=bool)
    (first,) = cluster_bootstrap_means([correct], present, 2000, seed=7)
    (again,) = cluster_bootstrap_means([correct], present, 2000, seed=7)
    np.testing.assert_array_equal(first, again)
    low, high = percentile_interval(first)
    means = correct.mean(axis=0)
    assert ((low < means) & (means < high)).all()
    # Binomial standard error ≈ sqrt(p(1-p)/n): the interval is about ±1.96 of it.
    width = high - low
    expected = 2 * 1.96 * np.sqrt(means * (1 - means) / 400)
    np.testing.assert_allclose(width, expected, rtol=0.2)


def test_bootstrap_is_paired_across_configs() -> None:
    rng = np.random.default_rng(2)
    base = (rng.random(300) < 0.5).astype(float)
    # The second config equals the first on every item: paired replicates must be identical.
    correct = np.column_stack([base, base])
    (reps,) = cluster_bootstrap_means([correct], np.ones_like(correct, bool), 2000, seed=3)
    np.testing.assert_array_equal(reps[:, 0], reps[:, 1])


def test_missing_outcomes_are_left_out_of_the_mean() -> None:
    # Column 1 has a missing outcome for item 0 and 1.0 for items 1 and 2. Left out of the mean,
    # every replicate that drew item 1 or 2 is exactly 1.0; counted as wrong (0), any replicate
    # that also drew item 0 would fall below 1.
    correct = np.array([[1.0, np.nan], [0.0, 1.0], [1.0, 1.0]])
    present = ~np.isnan(correct)
    (reps,) = cluster_bootstrap_means([correct], present, 2000, seed=0)
    drawn = reps[:, 1][~np.isnan(reps[:, 1])]
    assert drawn.size > 0 and (drawn == 1.0).all()
    # Only a resample of item 0 three times has no outcome: P = (1/3)^3 = 1/27.
    assert np.isnan(reps[:, 1]).mean() == pytest.approx(1 / 27, abs=0.02)
    # Column 0 is complete: its replicates are means over 3 draws, k/3, centred on 2/3.
    assert np.isin(np.round(reps[:, 0] * 3), [0, 1, 2, 3]).all()
    assert reps[:, 0].mean() == pytest.approx(2 / 3, abs=0.02)


def test_bootstrap_mean_with_a_missing_outcome_matches_exact_enumeration() -> None:
    # 4 items, item 0 missing. The bootstrap's expectation is the average, over all 4^4 equally
    # likely draws, of the mean over the drawn *present* items (draws of only item 0 have none).
    values = [None, 1.0, 0.0, 1.0]
    exact = []
    for draw in itertools.product(range(4), repeat=4):
        kept = [values[i] for i in draw if values[i] is not None]
        if kept:
            exact.append(sum(kept) / len(kept))
    expected = sum(exact) / len(exact)
    assert expected == pytest.approx(0.6667, abs=0.01)  # not 0.5, the mean with item 0 as wrong
    correct = np.array([[np.nan], [1.0], [0.0], [1.0]])
    (reps,) = cluster_bootstrap_means([correct], ~np.isnan(correct), 20_000, seed=5)
    # Standard error of the replicate mean: < 0.5 / sqrt(20,000) ≈ 0.0035.
    assert np.nanmean(reps[:, 0]) == pytest.approx(expected, abs=0.012)
    assert np.isnan(reps[:, 0]).mean() == pytest.approx(1 / 256, abs=0.002)


def test_pricing_by_tokens_and_by_gpu_hour() -> None:
    assert Pricing(price_per_million_tokens=2.0).usd_per_item(500_000, 0) == pytest.approx(1.0)
    gpu = Pricing(gpu_hour_price=3.6, throughput_tokens_per_second=1000.0)
    assert gpu.usd_per_item(3_600_000, 0) == pytest.approx(3.6)
    assert Pricing().usd_per_item(10, 10) is None


def test_frontier_and_rules_on_a_known_curve() -> None:
    cost = np.array([100.0, 200.0, 400.0, 800.0, 150.0])
    accuracy = np.array([0.50, 0.60, 0.62, 0.625, 0.40])  # the last point is dominated
    candidates = np.ones(5, dtype=bool)
    assert frontier_order(accuracy, cost, candidates) == [0, 1, 2, 3]
    gains = chord_gains(accuracy, cost)
    # 10 points for 100 more tokens is 100 points per 1k tokens; then 10, then 1.25.
    assert gains[0, 1] == pytest.approx(100.0)
    assert gains[2, 3] == pytest.approx(1.25)
    choice = replicate_marginal_gain_choices(accuracy[None], cost[None], candidates, tau=5.0)
    assert choice.tolist() == [2]
    assert int(utility_choice(accuracy, cost, candidates, lambda_per_1k=50.0)) == 1


def _paired_slice(items: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Correctness and tokens of 4 correlated configs, one with missing outcomes."""
    rng = np.random.default_rng(seed)
    difficulty = rng.random(items)
    correct = (difficulty[:, None] < [0.3, 0.45, 0.5, 0.9]).astype(float)
    correct = np.where(rng.random((items, 4)) < 0.05, 1 - correct, correct)
    tokens = rng.gamma(3, 100, size=(items, 1)) * [1, 2, 4, 8] + rng.normal(0, 20, (items, 4))
    correct[rng.random(items) < 0.2, 2] = np.nan
    return correct, tokens, ~np.isnan(correct)


def test_normal_approximation_matches_the_exact_bootstrap_on_a_large_slice() -> None:
    correct, tokens, present = _paired_slice(30_000, seed=11)
    exact = cluster_bootstrap_means([correct, tokens], present, 2000, 4, exact_max_items=10**9)
    approx = cluster_bootstrap_means([correct, tokens], present, 2000, 4, exact_max_items=1_000)
    for e, a in zip(exact, approx, strict=True):
        e_low, e_high = percentile_interval(e)
        a_low, a_high = percentile_interval(a)
        width = e_high - e_low
        # Both are Monte Carlo over 2000 replicates: bounds agree to a small share of the width.
        np.testing.assert_allclose(a_low, e_low, atol=0.08 * width.max())
        np.testing.assert_allclose(a_high, e_high, atol=0.08 * width.max())
    # Paired: the spread of a difference between configs is the exact bootstrap's, which is far
    # narrower than that of independent columns (configs 0 and 1 share most items' outcomes).
    e_diff = np.std(exact[0][:, 1] - exact[0][:, 0])
    a_diff = np.std(approx[0][:, 1] - approx[0][:, 0])
    assert a_diff == pytest.approx(e_diff, rel=0.1)
    unpaired = np.hypot(np.std(exact[0][:, 0]), np.std(exact[0][:, 1]))
    assert a_diff < 0.8 * unpaired
    # Token and accuracy replicates move together as in the exact bootstrap.
    e_corr = np.corrcoef(exact[0][:, 3], exact[1][:, 3])[0, 1]
    a_corr = np.corrcoef(approx[0][:, 3], approx[1][:, 3])[0, 1]
    assert a_corr == pytest.approx(e_corr, abs=0.1)


def test_normal_approximation_keeps_the_exact_bootstraps_edges() -> None:
    items = 5_000
    correct = np.ones((items, 3))
    correct[::2, 1] = 0.0
    correct[:, 2] = np.nan  # a config no item has
    present = ~np.isnan(correct)
    (reps,) = cluster_bootstrap_means([correct], present, 500, seed=1, exact_max_items=100)
    assert (reps[:, 0] == 1.0).all()  # an always-right config stays exactly right
    assert ((reps[:, 1] >= 0) & (reps[:, 1] <= 1)).all()
    assert reps[:, 1].mean() == pytest.approx(0.5, abs=0.005)
    assert np.isnan(reps[:, 2]).all()
    (again,) = cluster_bootstrap_means([correct], present, 500, seed=1, exact_max_items=100)
    np.testing.assert_array_equal(reps, again)
