"""TTSPM saturation fits: F(x) = F_max·(1 − (1 − p)^x) on binomial counts per budget.

x is the budget in the strategy's unit, as its module registers it (``strategies.registry``):
samples for parallel strategies, rounds for refinement, 1k thinking tokens for budget forcing
(so p and ε read "per 1k tokens" there).
"""

from __future__ import annotations

import math
from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict
from scipy.optimize import minimize

from ttscale.saturation_math import marginal_gain, saturation_point
from ttscale.strategies import registry

_GRID = 80

__all__ = [
    "SaturationFit",
    "fit_saturation_curve",
    "fit_strategy",
    "marginal_gain",
    "saturation_point",
]


class SaturationFit(BaseModel):
    """Fitted F_max and p for one strategy of a slice, and its saturation point N*."""

    model_config = ConfigDict(frozen=True)

    strategy: str
    kind: Literal["parallel", "sequential"]
    unit: str
    f_max: float
    p: float
    epsilon: float
    saturation_point: float
    """N* in the budget's own unit (samples, rounds or tokens), rounded up to a whole unit."""
    extrapolated: bool
    """True when N* lies beyond the largest measured budget."""
    budgets: list[int]
    deviance: float
    """Binomial deviance of the fit against the observed counts (about #budgets − 2 if it fits)."""


def strategy_unit(strategy: str) -> tuple[Literal["parallel", "sequential"], float, str]:
    """(kind, budget units per x, unit name) of a strategy; unknown strategies count samples."""
    unit = registry.budget_unit(strategy) or registry.SAMPLES
    return ("parallel" if unit.parallel else "sequential"), unit.scale, unit.name


def _log_likelihood(
    f_max: np.ndarray, hazard: np.ndarray, x: np.ndarray, correct: np.ndarray, items: np.ndarray
) -> np.ndarray:
    # (1 − p)^x written as exp(−hazard·x) keeps tiny per-token p well conditioned.
    prob = f_max[..., None] * -np.expm1(-hazard[..., None] * x)
    prob = np.clip(prob, 1e-12, 1 - 1e-12)
    return (correct * np.log(prob) + (items - correct) * np.log1p(-prob)).sum(axis=-1)


def fit_saturation_curve(
    x: np.ndarray, correct: np.ndarray, items: np.ndarray
) -> tuple[float, float, float]:
    """Binomial MLE of (F_max, p) for counts ``correct`` of ``items`` at budgets ``x``.

    A grid over (F_max, hazard) finds the basin, then L-BFGS-B polishes it. Returns
    (F_max, p, deviance).
    """
    x = np.asarray(x, dtype=np.float64)
    correct = np.asarray(correct, dtype=np.float64)
    items = np.asarray(items, dtype=np.float64)
    f_grid = np.linspace(0.01, 1.0, _GRID)
    # Hazards from "saturates long after the largest x" to "saturated before the smallest x".
    hazard_grid = np.geomspace(0.01 / x.max(), 20 / x.min(), _GRID)
    f_mesh, h_mesh = np.meshgrid(f_grid, hazard_grid, indexing="ij")
    loglik = _log_likelihood(f_mesh, h_mesh, x, correct, items)
    best = np.unravel_index(np.argmax(loglik), loglik.shape)
    start = np.array([f_grid[best[0]], math.log(hazard_grid[best[1]])])

    def negative(params: np.ndarray) -> float:
        f_max, log_hazard = params
        value = _log_likelihood(np.array(f_max), np.exp(np.array(log_hazard)), x, correct, items)
        return float(-value)

    result = minimize(negative, start, method="L-BFGS-B", bounds=[(1e-6, 1.0), (-30.0, 10.0)])
    params = result.x if result.fun <= negative(start) else start
    f_max, hazard = float(params[0]), math.exp(float(params[1]))
    observed = np.clip(correct / items, 1e-12, 1 - 1e-12)
    saturated_loglik = (correct * np.log(observed) + (items - correct) * np.log1p(-observed)).sum()
    deviance = float(2 * (saturated_loglik + negative(params)))
    return f_max, float(-math.expm1(-hazard)), max(deviance, 0.0)


def fit_strategy(
    strategy: str,
    budgets: list[int],
    correct: list[int],
    items: list[int],
    epsilon: float,
) -> SaturationFit | None:
    """Fit one strategy's curve; None with fewer than three budgets (two parameters)."""
    if len(budgets) < 3 or min(items) == 0:
        return None
    kind, scale, unit = strategy_unit(strategy)
    x = np.asarray(budgets, dtype=np.float64) / scale
    f_max, p, deviance = fit_saturation_curve(x, np.asarray(correct), np.asarray(items))
    n_star = saturation_point(f_max, p, epsilon) * scale
    return SaturationFit(
        strategy=strategy,
        kind=kind,
        unit=unit,
        f_max=f_max,
        p=p,
        epsilon=epsilon,
        saturation_point=float(n_star),
        extrapolated=n_star > max(budgets),
        budgets=list(budgets),
        deviance=deviance,
    )
