"""Command-line shorthands: ``KIND:key=value,...`` strategy specs and ``key=value`` settings.

A strategy spec names a kind and its settings; a bare value after ``key=`` continues that key's
list, so ``majority:n=1,2,4,8,temperature=0.7`` sets ``n=[1, 2, 4, 8]``. The kind's budget field
can also be written ``budgets=`` (or ``n_max=``, the largest sample count). Dotted keys nest:
``best_of_n:n=8,scorer.kind=mean_logprob``. ``recommended[:n_max=N,...]`` names the recommended
adaptive default (``ttscale.strategies.defaults``), N_max 8 unless given.
"""

from __future__ import annotations

import types
import typing
from typing import Any

import yaml

from ttscale.errors import ConfigError

BUDGET_ALIASES = ("budgets", "budget", "n_max")


def strategy_classes() -> dict[str, type]:
    """Every strategy config class by kind, read from the ``StrategyConfig`` union."""
    from ttscale.strategies.config import StrategyConfig

    def members(tp: Any) -> list[Any]:
        if typing.get_origin(tp) is typing.Annotated:
            return members(typing.get_args(tp)[0])
        if typing.get_origin(tp) in (typing.Union, types.UnionType):
            return [m for arg in typing.get_args(tp) for m in members(arg)]
        return [tp]

    return {cls.model_fields["kind"].default: cls for cls in members(StrategyConfig)}


def budget_field(cls: Any) -> str:
    """The field of ``cls`` that lists its budget values (``n``, ``budgets_tokens``, ``rounds``)."""
    for name, info in cls.model_fields.items():
        if info.annotation == list[int]:
            return str(name)
    raise ConfigError(f"{cls.__name__} has no list of budget values")


def _scalar(text: str) -> Any:
    try:
        return yaml.safe_load(text) if text.strip() else ""
    except yaml.YAMLError:
        return text


def parse_key_values(pairs: list[str], flag: str) -> dict[str, Any]:
    """``["a=1", "b=x"]`` → ``{"a": 1, "b": "x"}`` (numbers and booleans typed as in YAML)."""
    parsed: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"{flag} expects key=value, got {pair!r}")
        parsed[key.strip()] = _scalar(value)
    return parsed


def parse_strategy(spec: str) -> dict[str, Any]:
    """A strategy spec ``KIND[:key=value,...]`` as a dict a strategy config validates."""
    kind, _, rest = spec.partition(":")
    kind = kind.strip()
    if kind == "recommended":
        return _recommended(spec, rest)
    classes = strategy_classes()
    if kind not in classes:
        raise ConfigError(
            f"--strategy {spec!r}: unknown kind {kind!r}; known: {', '.join(classes)}"
        )
    budget_key = budget_field(classes[kind])
    values: dict[str, list[Any]] = {}
    key = None
    for token in (t.strip() for t in rest.split(",") if t.strip()) if rest else ():
        name, sep, value = token.partition("=")
        if sep and not name.strip():
            raise ConfigError(f"--strategy {spec!r}: a setting without a name: {token!r}")
        if sep:
            key = budget_key if name.strip() in BUDGET_ALIASES else name.strip()
            values.setdefault(key, []).append(_scalar(value))
        elif key is None:
            raise ConfigError(f"--strategy {spec!r}: expected key=value, got {token!r}")
        else:
            values[key].append(_scalar(token))
    data: dict[str, Any] = {"kind": kind}
    for name, items in values.items():
        setting: Any = items if name == budget_key or len(items) > 1 else items[0]
        target = data
        *parents, leaf = name.split(".")
        for parent in parents:
            target = target.setdefault(parent, {})
        target[leaf] = setting
    return data


def _recommended(spec: str, rest: str) -> dict[str, Any]:
    """``recommended[:n_max=N,key=value]``: the preset, with N_max and sampling settings."""
    from ttscale.strategies.defaults import recommended_adaptive

    settings = parse_strategy(f"adaptive_consistency:{rest}") if rest.strip() else {}
    budgets = settings.pop("n", [8])
    settings.pop("kind", None)
    if len(budgets) != 1:
        raise ConfigError(f"--strategy {spec!r}: the recommended preset takes one n_max")
    try:
        config = recommended_adaptive(budgets[0], **settings)
    except ValueError as exc:  # a fixed setting overridden, or an invalid value
        raise ConfigError(f"--strategy {spec!r}: {exc}") from None
    return config.model_dump(mode="json")
