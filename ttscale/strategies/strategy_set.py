"""The strategies of one batch: one optional sub-model per kind (the Prefect run form's shape).

Prefect 3.7's form shows list items of a union as raw JSON editors, so ``BatchRequest`` holds a
``StrategySet`` whose fields are the kinds, each a config or Off; the list form still validates.
The fields are built from the strategy registry: one per registered kind, in registry order,
titled with its label, defaulting to its config when the kind is on by default.
"""

from __future__ import annotations

import typing
from typing import TYPE_CHECKING, Annotated, Any

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    TypeAdapter,
    WithJsonSchema,
    create_model,
    model_validator,
)

from ttscale.strategies import registry
from ttscale.strategies.config import StrategyConfig

Off = Annotated[None, WithJsonSchema({"type": "null", "title": "Off"})]
"""``None``, titled "Off" in JSON schemas: the run form's tab that leaves a strategy out."""


class StrategySetBase(BaseModel):
    """The strategies to compare, each with its budgets. Set one to Off (null) to leave it out.

    A kind left out of a mapping takes its default: majority vote and budget forcing on, the rest
    off. The list form, ``[{kind: majority, n: [1, 2]}, ...]``, runs exactly the kinds it lists.
    """

    model_config = ConfigDict(frozen=True, extra="forbid", title="Strategies")

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
    def _at_least_one(self) -> StrategySetBase:
        if not self.configs():
            raise ValueError("give at least one strategy")
        return self

    def configs(self) -> list[StrategyConfig]:
        """The enabled strategies, in field order."""
        enabled = (getattr(self, name) for name in type(self).model_fields)
        return [config for config in enabled if config is not None]


def build_strategy_set() -> type[StrategySetBase]:
    """``StrategySet``: a field per registered kind, in registry order.

    Field order is the order of ``configs()``: the order units run in and are fingerprinted in.
    """
    fields: dict[str, Any] = {
        entry.kind: (
            typing.Union[entry.config, Off],  # noqa: UP007
            Field(
                entry.config.model_validate({}) if entry.enabled_by_default else None,
                title=entry.label,
            ),
        )
        for entry in registry.entries()
    }
    registry.seal()
    return create_model(
        "StrategySet",
        __base__=StrategySetBase,
        __module__=__name__,
        __doc__=StrategySetBase.__doc__,
        **fields,
    )


_STRATEGY_ADAPTER: TypeAdapter[StrategyConfig] = TypeAdapter(registry.strategy_config_union())

if TYPE_CHECKING:
    StrategySet = StrategySetBase
else:
    StrategySet = build_strategy_set()
