"""The recommended adaptive default: one named preset, the same on every pool (no tuning per pool).

"The accuracy of majority@N at far fewer tokens". The rule (README "Recommended adaptive default"):

- **With a scorer and a labelled calibration run** (both named): the verifier gate whose threshold
  is the cheapest score percentile that matches majority@N_max's accuracy on the calibration run
  (``calibrate="match_majority"``, margin 0, best-scored answer). On Qwen2.5-Math's 100 × 8
  MATH pool with its reward-model scores, cross-fitted (each half's threshold from the other half
  only; bench/bench_token_efficiency.py) it used 7.64x fewer tokens than majority@8 at +0.8
  points: the project's goal (≥ 5x at no more than 0.5 points below) is met there (and on 9 of
  10 random halvings of the items).
- **Otherwise** Adaptive-Consistency with a stop threshold of 0.8, one sample per round. It needs
  no scorer, so it runs on any engine and any pool: on the same pool 3.2x at +0.2 points (the
  default threshold 0.95 gave 1.7x); the goal is not met without a scorer.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # reports import this module for the preset's settings alone: keep it light
    from ttscale.strategies.kinds.adaptive_consistency import AdaptiveConsistencyConfig
    from ttscale.strategies.kinds.verifier_gate import VerifierGateConfig

RECOMMENDED = "recommended"
"""The preset's name: ``ttscale run --strategy recommended[:n_max=N]``, with a scorer and a
calibration run ``recommended:calibration_run=RUN,scorer.kind=KIND``."""
RECOMMENDED_SETTINGS: dict[str, Any] = {
    "kind": "adaptive_consistency",
    "threshold": 0.8,
    "round_size": 1,
}
"""The preset without a scorer and a calibration run (reports mark a run's strategy matching it)."""
RECOMMENDED_GATE_SETTINGS: dict[str, Any] = {
    "kind": "verifier_gate",
    "calibrate": "match_majority",
    "target_margin": 0.0,
    "answer": "best",
}
"""The preset with a scorer and a calibration run (the scorer and the run are the caller's)."""


def recommended_adaptive(
    n_max: int = 8,
    *,
    scorer: Any = None,
    calibration_run: str | None = None,
    **overrides: Any,
) -> AdaptiveConsistencyConfig | VerifierGateConfig:
    """The recommended adaptive default with at most ``n_max`` samples per item.

    With ``scorer`` (a scorer config, or its dict) and ``calibration_run`` both given: the
    match-majority verifier gate; with neither: Adaptive-Consistency at 0.8. One without the
    other is refused (the gate needs both; dropping one silently would run another preset).
    ``overrides``: sampling settings of the run (``max_tokens``, ``temperature``), never the
    stopping rule's, which would make it another strategy.
    """
    if (scorer is None) != (calibration_run is None):
        missing = "calibration_run" if calibration_run is None else "scorer"
        raise ValueError(
            f"the recommended preset needs both a scorer and a calibration_run, or neither; "
            f"{missing} is missing (with both it is the match-majority verifier gate, with "
            "neither adaptive_consistency)"
        )
    settings = RECOMMENDED_SETTINGS if scorer is None else RECOMMENDED_GATE_SETTINGS
    fixed = set(settings) & set(overrides)
    if fixed:
        raise ValueError(f"the recommended preset fixes {sorted(fixed)}; use {settings['kind']}")
    if scorer is None:
        from ttscale.strategies.kinds.adaptive_consistency import AdaptiveConsistencyConfig

        return AdaptiveConsistencyConfig(n=[n_max], **settings, **overrides)
    from ttscale.strategies.kinds.verifier_gate import VerifierGateConfig

    return VerifierGateConfig(
        n=[n_max], scorer=scorer, calibration_run=calibration_run, **settings, **overrides
    )


def recommended_kind(request: dict[str, Any]) -> str | None:
    """The kind of the run request's strategy that is a recommended preset, if one is."""
    stored = request.get("strategies")
    configs = stored.values() if isinstance(stored, dict) else stored or []
    for config in configs:
        if not isinstance(config, dict):
            continue
        for settings in (RECOMMENDED_SETTINGS, RECOMMENDED_GATE_SETTINGS):
            if all(config.get(key) == value for key, value in settings.items()):
                return str(config["kind"])
    return None
