"""The TTSPM saturation point (Wang et al. 2025, arXiv 2505.20522), in one place.

TTSPM models accuracy after N units of budget (samples, rounds, 1k thinking tokens) as
F(N) = F_max·(1 − (1 − p)^N), so one more unit gains F(N + 1) − F(N) = F_max·p·(1 − p)^N.
The saturation point N* is the first N whose gain is at most ε. Pure ``math``: strategies
(stopping rules) and analysis (fitted curves) both import it, and neither imports the other.
"""

from __future__ import annotations

import math

# Float noise can push an exact integer ratio just above it: ln 0.25 / ln 0.5 is 2, and must
# ceil to 2, not to 3. A ratio within this of an integer counts as that integer.
CEIL_SLACK = 1e-9


def ceil_ratio(numerator: float, denominator: float) -> int:
    """⌈numerator / denominator⌉, where a ratio within ``CEIL_SLACK`` above an integer is it."""
    return math.ceil(numerator / denominator - CEIL_SLACK)


def _check(f_max: float, p: float) -> None:
    if f_max <= 0:
        raise ValueError(f"f_max must be > 0, got {f_max}")
    if not 0.0 < p <= 1.0:
        raise ValueError(f"p must be in (0, 1], got {p}")


def marginal_gain(f_max: float, p: float, n: float) -> float:
    """F(n + 1) − F(n) = F_max·p·(1 − p)^n for F(n) = F_max·(1 − (1 − p)^n)."""
    _check(f_max, p)
    return f_max * p * (1.0 - p) ** n


def saturation_point(f_max: float, p: float, epsilon: float) -> int:
    """N* = ⌈ln(ε/(F_max·p)) / ln(1 − p)⌉: the first N ≥ 0 whose marginal gain is ≤ ε.

    0 when ε ≥ F_max·p (the very first unit gains no more than ε). When ε/(F_max·p) is exactly
    (1 − p)^k, N* = k: the gain at k equals ε, and "≤ ε" includes it. p = 1 gives 1 (all of F_max
    comes with the first unit), the limit of the formula as p → 1. As p → 0, N* grows like
    ln(F_max·p/ε)/p; ln(1 − p) is taken as log1p(−p) so that tiny p stays exact.
    """
    _check(f_max, p)
    if epsilon <= 0:
        raise ValueError(f"epsilon must be > 0, got {epsilon}")
    if epsilon >= f_max * p:
        return 0
    if p == 1.0:
        return 1
    return ceil_ratio(math.log(epsilon / (f_max * p)), math.log1p(-p))
