"""A run's recommendations as a small machine-readable policy that serving can load.

``policy.json`` sits next to ``report.json``. One entry per slice (dataset, language) with a
recommendation: the strategy, its budget, the strategy settings that reproduce it (sampling,
``max_tokens``, the budget itself: N samples or a thinking-token cap), and the expected accuracy
with its interval, tokens and USD per item. Slices without enough evidence are listed under
``withheld`` with the reason, and get no entry.
"""

from __future__ import annotations

from typing import Any

from ttscale.analysis.saturation import strategy_unit
from ttscale.reports.headline import SliceHeadline, slice_headlines
from ttscale.reports.model import Report

POLICY_SCHEMA = "ttscale.policy/v1"


def build_policy(report: Report) -> dict[str, Any]:
    """The policy of ``report``: JSON-ready, its entries the report's headline recommendations."""
    settings = report.settings
    heads = slice_headlines(report)
    return {
        "schema": POLICY_SCHEMA,
        "run_id": report.run.run_id,
        "model": report.run.engine,
        "engine_kind": report.run.engine_kind,
        "generated_at": report.generated_at,
        "rule": {"name": "marginal_gain", "tau_points_per_1k_tokens": settings.tau},
        "prices": {
            "usd_per_1m_input_tokens": settings.prompt_price_per_million_tokens,
            "usd_per_1m_output_tokens": settings.price_per_million_tokens,
            "usd_per_gpu_hour": settings.gpu_hour_price,
        },
        "entries": [_entry(h, report) for h in heads if h.strategy is not None],
        "withheld": [
            {"dataset": h.dataset, "language": h.language, "items": h.items}
            | {"reason": h.withheld, "needed": h.needed}
            for h in heads
            if h.strategy is None
        ],
    }


def _entry(h: SliceHeadline, report: Report) -> dict[str, Any]:
    assert h.strategy is not None and h.budget is not None
    kind, _, unit = strategy_unit(h.strategy)
    return {
        "dataset": h.dataset,
        "language": h.language,
        "strategy": h.strategy,
        "budget": h.budget,
        "budget_unit": unit,
        "parallel": kind == "parallel",
        "settings": strategy_settings(report.run.request, h.strategy, h.budget),
        "expected": {
            "accuracy": h.accuracy,
            "accuracy_ci": [h.accuracy_low, h.accuracy_high],
            "confidence": report.settings.confidence,
            "tokens_per_item": h.tokens_per_item,
            "usd_per_item": h.usd_per_item,
        },
        "items": h.items,
    }


def strategy_settings(request: dict[str, Any], strategy: str, budget: int) -> dict[str, Any]:
    """The strategy's config as the run's request stored it, its budget list narrowed to ``budget``.

    E.g. ``{"kind": "majority", "n": 4, "temperature": 0.7, "top_p": 0.95, "max_tokens": 512}``.
    ``{"kind": strategy}`` alone when the request does not hold the config (older runs).
    """
    stored = request.get("strategies")
    config: Any = None
    if isinstance(stored, dict):
        config = stored.get(strategy)
    elif isinstance(stored, list):
        config = next(
            (c for c in stored if isinstance(c, dict) and c.get("kind") == strategy), None
        )
    if not isinstance(config, dict):
        return {"kind": strategy}
    return {
        key: budget if _is_budget_list(value, budget) else value for key, value in config.items()
    }


def _is_budget_list(value: Any, budget: int) -> bool:
    return isinstance(value, list) and budget in value and all(isinstance(v, int) for v in value)
