"""The recommended adaptive default: one named preset, the same on every pool (no tuning per pool).

"The accuracy of majority@N at far fewer tokens": Adaptive-Consistency with a stop threshold of
0.8, one sample per round. It needs no scorer, so it runs on any engine and any pool. On Qwen2.5-
Math's 100 × 8 MATH pool (bench/bench_token_efficiency.py, README "Recommended adaptive default")
it used 3.2x fewer tokens than majority@8 at +0.2 points; the default threshold 0.95 gave 1.7x.
The issue's 5x bar is not met: only a reward-model gate calibrated on another run comes near it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # reports import this module for the preset's settings alone: keep it light
    from ttscale.strategies.kinds.adaptive_consistency import AdaptiveConsistencyConfig

RECOMMENDED = "recommended"
"""The preset's name: ``ttscale run --strategy recommended[:n_max=N]``."""
RECOMMENDED_SETTINGS: dict[str, Any] = {
    "kind": "adaptive_consistency",
    "threshold": 0.8,
    "round_size": 1,
}
"""What makes a strategy config the preset (reports mark a run's strategy that matches it)."""


def recommended_adaptive(n_max: int = 8, **overrides: Any) -> AdaptiveConsistencyConfig:
    """The recommended adaptive default with at most ``n_max`` samples per item.

    ``overrides``: sampling settings of the run (``max_tokens``, ``temperature``), never the
    stopping rule's, which would make it another strategy.
    """
    from ttscale.strategies.kinds.adaptive_consistency import AdaptiveConsistencyConfig

    fixed = set(RECOMMENDED_SETTINGS) & set(overrides)
    if fixed:
        raise ValueError(f"the recommended preset fixes {sorted(fixed)}; use adaptive_consistency")
    return AdaptiveConsistencyConfig(n=[n_max], **RECOMMENDED_SETTINGS, **overrides)


def recommended_kind(request: dict[str, Any]) -> str | None:
    """The kind of the run request's strategy that is the recommended preset, if one is."""
    stored = request.get("strategies")
    configs = stored.values() if isinstance(stored, dict) else stored or []
    for config in configs:
        if isinstance(config, dict) and all(
            config.get(key) == value for key, value in RECOMMENDED_SETTINGS.items()
        ):
            return str(config["kind"])
    return None
