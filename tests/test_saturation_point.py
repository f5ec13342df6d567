"""The one TTSPM saturation point, N* = ⌈ln(ε/(F_max·p)) / ln(1 − p)⌉ (arXiv 2505.20522).

The expected values are computed here from the definition — the first N whose marginal gain
F_max·p·(1 − p)^N is ≤ ε — in exact rational arithmetic on the very floats passed in, so they
share no code and no rounding with the module. At a boundary, where ε/(F_max·p) is (1 − p)^k up
to float rounding, N* is k: the gain at k equals ε, and "≤ ε" includes it.
"""

from __future__ import annotations

import itertools
import math
from fractions import Fraction

import pytest

from ttscale.analysis import saturation as analysis_saturation
from ttscale.saturation_math import marginal_gain, saturation_point
from ttscale.strategies import stopping

# A ratio this close to an integer k is the boundary case "ε/(F_max·p) = (1 − p)^k".
BOUNDARY = 1e-6


def exact_gain(f_max: float, p: float, n: int) -> Fraction:
    return Fraction(f_max) * Fraction(p) * (1 - Fraction(p)) ** n


def first_n_at_or_below(f_max: float, p: float, epsilon: float) -> int:
    """The definition, decided exactly; the float formula only picks where to start looking."""
    start = 0
    if epsilon < f_max * p and p < 1:
        start = max(math.floor(math.log(epsilon / (f_max * p)) / math.log1p(-p)) - 1, 0)
    n = start
    while exact_gain(f_max, p, n) > Fraction(epsilon):
        n += 1
    while n > 0 and exact_gain(f_max, p, n - 1) <= Fraction(epsilon):
        n -= 1
    return n


def expected(f_max: float, p: float, epsilon: float) -> int:
    if p < 1:
        ratio = math.log(epsilon / (f_max * p)) / math.log1p(-p)
        if abs(ratio - round(ratio)) < BOUNDARY:
            return max(round(ratio), 0)
    return first_n_at_or_below(f_max, p, epsilon)


# (1 − p)^k and F_max·p are exact in binary here (7^18 < 2^53), so ε is exactly on the boundary.
DYADIC = [
    (f_max, p, k)
    for f_max, p in itertools.product((1.0, 0.75, 0.5), (0.5, 0.25, 0.75, 0.125, 0.875))
    for k in range(0, 19)
]


@pytest.mark.parametrize(("f_max", "p", "k"), DYADIC)
def test_exact_boundary_is_k(f_max: float, p: float, k: int) -> None:
    epsilon = f_max * p * (1 - p) ** k
    assert Fraction(epsilon) == exact_gain(f_max, p, k)  # the boundary really is exact
    assert first_n_at_or_below(f_max, p, epsilon) == k
    assert saturation_point(f_max, p, epsilon) == k


@pytest.mark.parametrize("p", [0.05, 0.1, 0.3, 0.7, 0.9, 0.99])
@pytest.mark.parametrize("f_max", [0.1, 0.8, 1.0])
def test_boundary_up_to_float_rounding_is_k(f_max: float, p: float) -> None:
    # ε computed in floats lands a hair either side of F_max·p·(1 − p)^k; N* is still k.
    for k in range(40):
        epsilon = f_max * p * (1 - p) ** k
        assert saturation_point(f_max, p, epsilon) == k, k


# Cases where the two former copies disagreed: analysis/saturation.py's plain ceil added one.
FORMER_DISAGREEMENTS = [
    (0.1, 0.05, 0.005, 0),  # ε = F_max·p up to one ulp: the first sample already gains ≤ ε
    (0.1, 0.1, 0.01, 0),
    (0.1, 0.2, 0.02, 0),
    (0.1, 0.1, 0.1 * 0.1 * 0.9**2, 2),
    (0.1, 0.25, 0.1 * 0.25 * 0.75**3, 3),
    (0.25, 0.2, 0.04, 1),  # ε/(F_max·p) = 0.8 = (1 − p)^1
    (0.8, 0.75, 0.15, 1),  # ε/(F_max·p) = 0.25 = (1 − p)^1
    (1.0, 0.5, 0.5**30, 29),
]


@pytest.mark.parametrize(("f_max", "p", "epsilon", "n_star"), FORMER_DISAGREEMENTS)
def test_former_disagreements(f_max: float, p: float, epsilon: float, n_star: int) -> None:
    assert saturation_point(f_max, p, epsilon) == n_star == expected(f_max, p, epsilon)


GRID = list(
    itertools.product(
        (0.25, 0.5, 0.8, 1.0),
        [i / 20 for i in range(1, 21)],
        [j / 100 for j in range(1, 21)] + [0.5**k for k in range(0, 11)],
    )
)


def test_grid_matches_the_definition() -> None:
    wrong = [
        (f_max, p, eps, saturation_point(f_max, p, eps), expected(f_max, p, eps))
        for f_max, p, eps in GRID
        if saturation_point(f_max, p, eps) != expected(f_max, p, eps)
    ]
    assert len(GRID) == 2480
    assert wrong == []


def test_off_the_boundary_the_gain_brackets_epsilon() -> None:
    for f_max, p, eps in GRID:
        n_star = saturation_point(f_max, p, eps)
        assert marginal_gain(f_max, p, n_star) <= eps * (1 + 1e-9)
        if n_star > 0:
            assert marginal_gain(f_max, p, n_star - 1) > eps


@pytest.mark.parametrize(("f_max", "epsilon"), [(1.0, 0.5), (0.8, 0.01), (0.3, 1e-9)])
def test_p_one_saturates_after_one_unit(f_max: float, epsilon: float) -> None:
    # F(1) = F_max: the first unit gains everything, the second nothing.
    assert saturation_point(f_max, 1.0, epsilon) == 1 == first_n_at_or_below(f_max, 1.0, epsilon)


@pytest.mark.parametrize(("f_max", "p", "epsilon"), [(0.8, 0.3, 0.24), (0.8, 0.3, 0.5), (1, 1, 1)])
def test_epsilon_at_least_the_first_gain_gives_zero(f_max: float, p: float, epsilon: float) -> None:
    assert saturation_point(f_max, p, epsilon) == 0


@pytest.mark.parametrize("p", [1e-3, 1e-6, 1e-9, 1e-12, 1e-15, 1e-17])
def test_small_p_follows_the_closed_form(p: float) -> None:
    # 1 − p rounds to 1 below p ≈ 1e-16, so ln(1 − p) must be log1p(−p), not log(1 − p).
    f_max, epsilon = 1.0, p / 10
    n_star = saturation_point(f_max, p, epsilon)
    assert n_star == pytest.approx(math.log(10) / -math.log1p(-p), rel=1e-9, abs=1)
    if p >= 1e-3:
        assert n_star == first_n_at_or_below(f_max, p, epsilon)


@pytest.mark.parametrize(
    ("f_max", "p", "epsilon"), [(0.0, 0.3, 0.01), (0.8, 0.0, 0.01), (0.8, 1.5, 0.01), (0.8, 0.3, 0)]
)
def test_invalid_parameters_raise(f_max: float, p: float, epsilon: float) -> None:
    with pytest.raises(ValueError):
        saturation_point(f_max, p, epsilon)


def test_strategies_and_analysis_share_the_one_implementation() -> None:
    assert stopping.saturation_point is saturation_point
    assert analysis_saturation.saturation_point is saturation_point
    assert stopping.marginal_gain is analysis_saturation.marginal_gain is marginal_gain
