"""Strategies, looked up by kind in a registry. One signature: ``async (ctx, config) -> Outcome``.

Each kind is one module in ``strategies/kinds/``. Importing this package imports nothing else:
``STRATEGIES`` (every registered coroutine by kind) and the context types load on first use, so
light callers (the CLI's help listing ``kinds.names()``) do not pay for scipy and httpx.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ttscale.strategies.base import Outcome, Strategy, StrategyContext
    from ttscale.strategies.registry import STRATEGIES

_LAZY = {
    "Outcome": "ttscale.strategies.base",
    "Strategy": "ttscale.strategies.base",
    "StrategyContext": "ttscale.strategies.base",
    "STRATEGIES": "ttscale.strategies.registry",
}

__all__ = ["STRATEGIES", "Outcome", "Strategy", "StrategyContext"]


def __getattr__(name: str) -> Any:
    """The names in ``__all__``, imported on first use; ``STRATEGIES`` after every kind loaded."""
    if name not in _LAZY:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    module = importlib.import_module(_LAZY[name])
    if name == "STRATEGIES":
        module.load()
    return getattr(module, name)
