"""The strategies of one batch: one optional sub-model per kind (the Prefect run form's shape).

Prefect 3.7's form shows list items of a union as raw JSON editors, so ``BatchRequest`` holds a
``StrategySet`` whose fields are the kinds, each a config or Off; the list form still validates.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, WithJsonSchema, model_validator

from ttscale.strategies.config import (
    AdaptiveConsistencyConfig,
    BestOfNConfig,
    BudgetForcingConfig,
    ESCConfig,
    MajorityConfig,
    OptScaleConfig,
    RefinementConfig,
    StrategyConfig,
    WeightedVoteConfig,
)

Off = Annotated[None, WithJsonSchema({"type": "null", "title": "Off"})]
"""``None``, titled "Off" in JSON schemas: the run form's tab that leaves a strategy out."""


class StrategySet(BaseModel):
    """The strategies to compare, each with its budgets. Set one to Off (null) to leave it out.

    A kind left out of a mapping takes its default: majority vote and budget forcing on, the rest
    off. The list form, ``[{kind: majority, n: [1, 2]}, ...]``, runs exactly the kinds it lists.
    """

    model_config = ConfigDict(frozen=True, extra="forbid", title="Strategies")

    # Field order is the order of configs(): the order units run in and are fingerprinted in.
    majority: MajorityConfig | Off = Field(MajorityConfig(), title="Majority vote")
    budget_forcing: BudgetForcingConfig | Off = Field(BudgetForcingConfig(), title="Budget forcing")
    best_of_n: BestOfNConfig | Off = Field(None, title="Best-of-N")
    weighted_vote: WeightedVoteConfig | Off = Field(None, title="Score-weighted vote")
    adaptive_consistency: AdaptiveConsistencyConfig | Off = Field(
        None, title="Adaptive-Consistency"
    )
    esc: ESCConfig | Off = Field(None, title="Early-stopping self-consistency (ESC)")
    optscale: OptScaleConfig | Off = Field(None, title="OptScale")
    refinement: RefinementConfig | Off = Field(None, title="Sequential refinement")

    @model_validator(mode="before")
    @classmethod
    def _from_list(cls, data: Any) -> Any:
        """Accept the list form: each listed config under its kind, every other kind off."""
        if not isinstance(data, list | tuple):
            return data
        configs = [_STRATEGY_ADAPTER.validate_python(item) for item in data]
        kinds = [config.kind for config in configs]
        if len(set(kinds)) != len(kinds):
            raise ValueError(f"each strategy kind may appear once, got {kinds}")
        return {name: None for name in cls.model_fields} | {c.kind: c for c in configs}

    @model_validator(mode="after")
    def _at_least_one(self) -> StrategySet:
        if not self.configs():
            raise ValueError("give at least one strategy")
        return self

    def configs(self) -> list[StrategyConfig]:
        """The enabled strategies, in field order."""
        enabled = (getattr(self, name) for name in type(self).model_fields)
        return [config for config in enabled if config is not None]


_STRATEGY_ADAPTER: TypeAdapter[StrategyConfig] = TypeAdapter(StrategyConfig)
