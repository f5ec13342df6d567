"""Strategies, looked up by name in a plain registry. One signature: ``async (ctx, config)``."""

from __future__ import annotations

from ttscale.strategies.adaptive import adaptive_consistency, esc, optscale
from ttscale.strategies.base import Outcome, Strategy, StrategyContext
from ttscale.strategies.budget_forcing import budget_forcing
from ttscale.strategies.majority import majority
from ttscale.strategies.parallel import best_of_n, weighted_vote_strategy
from ttscale.strategies.refinement import refinement

STRATEGIES: dict[str, Strategy] = {
    "majority": majority,
    "budget_forcing": budget_forcing,
    "best_of_n": best_of_n,
    "weighted_vote": weighted_vote_strategy,
    "adaptive_consistency": adaptive_consistency,
    "esc": esc,
    "optscale": optscale,
    "refinement": refinement,
}

__all__ = ["STRATEGIES", "Outcome", "Strategy", "StrategyContext"]
