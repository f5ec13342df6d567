"""The strategy registry: each kind declares its config, its coroutine and what its budget counts.

A strategy is one module in ``ttscale/strategies/kinds/`` whose coroutine is decorated with
``@strategy(MyRuleConfig, order=..., budget=...)``. ``load()`` imports every module of that
package (pkgutil), so no central list names the kinds: the config union that parses
``--strategy`` specs, the run form (``StrategySet``), the runner's lookup (``STRATEGIES``),
replay, and the budget units of the report are all read from here.
"""

from __future__ import annotations

import importlib
import re
import typing
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any, TypeVar

from pydantic import Field

from ttscale.strategies.base import Strategy
from ttscale.strategies.config import StrategyConfigBase

KINDS_PACKAGE = "ttscale.strategies.kinds"
_KIND = re.compile(r"^[a-z][a-z0-9_]*$")


@dataclass(frozen=True)
class BudgetUnit:
    """What one budget value counts, and how the report scales it on its x axis."""

    name: str
    """The unit as the report names it: "samples", "rounds", "1k thinking tokens"."""
    scale: float = 1.0
    """Budget values per x unit, e.g. 1000 when x is counted in thousands of tokens."""
    parallel: bool = False
    """True when the budget is a count of independent samples (majority, best-of-N, ESC...)."""


SAMPLES = BudgetUnit("samples", 1.0, parallel=True)
"""The budget of a parallel strategy: the most independent samples per item."""


@dataclass(frozen=True)
class StrategyKind:
    """One registered strategy: everything the CLI, the run form, replay and reports need."""

    kind: str
    config: type[StrategyConfigBase]
    run: Strategy
    order: int
    """Position in the run form and in the run: units run and are fingerprinted in this order."""
    budget: BudgetUnit
    label: str
    """Human name: the run form's tab title."""
    enabled_by_default: bool
    """On in a run form left untouched (``StrategySet()``); off (None) otherwise."""

    @property
    def replayable(self) -> bool:
        """Whether a pool of stored independent samples can serve it (parallel strategies)."""
        return self.budget.parallel


_REGISTRY: dict[str, StrategyKind] = {}
STRATEGIES: dict[str, Strategy] = {}
"""Every strategy's coroutine by kind (the runner's lookup), filled by ``register``."""
_loaded = False
_sealed = False


def register(
    config: type[StrategyConfigBase],
    run: Strategy,
    *,
    order: int,
    budget: BudgetUnit = SAMPLES,
    label: str | None = None,
    enabled_by_default: bool = False,
) -> StrategyKind:
    """Register ``run`` as the strategy of ``config``'s kind (its ``kind`` field's default).

    ``label`` defaults to the config's title. Raises ``ValueError`` on a second kind with the
    same name or order, or a module in ``kinds/`` not named after its kind, and
    ``RuntimeError`` once the derived models have been built: a strategy belongs in
    ``ttscale/strategies/kinds/``, where it is found before they are.
    """
    field = config.model_fields.get("kind")
    kind = field.default if field is not None else None
    if not isinstance(kind, str) or not _KIND.match(kind):
        raise ValueError(f"{config.__name__} needs a field kind: Literal[...] with that default")
    package, _, module = run.__module__.rpartition(".")
    if package == KINDS_PACKAGE and module != kind:
        # kinds.names() lists kinds by module name without importing them.
        raise ValueError(f"strategy {kind!r} must be defined in {KINDS_PACKAGE}.{kind}")
    entry = StrategyKind(
        kind=kind,
        config=config,
        run=run,
        order=order,
        budget=budget,
        label=label or str(config.model_config.get("title") or kind),
        enabled_by_default=enabled_by_default,
    )
    if _REGISTRY.get(kind) == entry:
        return entry
    if _sealed:
        raise RuntimeError(
            f"strategy {kind!r} registered after the config union and run form were built; "
            f"put its module in {KINDS_PACKAGE.replace('.', '/')}/"
        )
    if kind in _REGISTRY:
        raise ValueError(f"strategy kind {kind!r} is registered twice")
    clash = [e.kind for e in _REGISTRY.values() if e.order == order]
    if clash:
        raise ValueError(f"strategy {kind!r} has order {order}, as {clash[0]!r} does")
    _REGISTRY[kind] = entry
    STRATEGIES[kind] = run
    return entry


StrategyFn = TypeVar("StrategyFn", bound=Callable[..., Any])


def strategy(
    config: type[StrategyConfigBase],
    *,
    order: int,
    budget: BudgetUnit = SAMPLES,
    label: str | None = None,
    enabled_by_default: bool = False,
) -> Callable[[StrategyFn], StrategyFn]:
    """Decorator form of ``register``: ``@strategy(MyRuleConfig, order=90)`` above the coroutine."""

    def decorate(run: StrategyFn) -> StrategyFn:
        register(
            config,
            run,
            order=order,
            budget=budget,
            label=label,
            enabled_by_default=enabled_by_default,
        )
        return run

    return decorate


def load() -> None:
    """Import every module of ``ttscale.strategies.kinds`` once, which registers its strategy."""
    global _loaded
    if _loaded:
        return
    from ttscale.strategies.kinds import names

    for name in names():
        importlib.import_module(f"{KINDS_PACKAGE}.{name}")
    _loaded = True


def entries() -> list[StrategyKind]:
    """Every registered strategy, in order."""
    load()
    return sorted(_REGISTRY.values(), key=lambda e: e.order)


def kinds() -> list[str]:
    """Every strategy kind, in order (e.g. for ``--strategy``'s help)."""
    return [e.kind for e in entries()]


def get(kind: str) -> StrategyKind:
    """The strategy registered as ``kind``; ``ValueError`` naming the known kinds if none is."""
    load()
    try:
        return _REGISTRY[kind]
    except KeyError:
        raise ValueError(f"unknown strategy kind {kind!r}; known: {', '.join(kinds())}") from None


def budget_unit(kind: str) -> BudgetUnit | None:
    """What ``kind``'s budget counts, or None for a kind not registered here."""
    load()
    entry = _REGISTRY.get(kind)
    return entry.budget if entry is not None else None


def seal() -> None:
    """Refuse new kinds from now on: models derived from the registry would not show them."""
    global _sealed
    load()
    _sealed = True


def strategy_config_union() -> Any:
    """Any strategy's config, told apart by ``kind``: a pydantic discriminated union."""
    seal()
    members = tuple(e.config for e in entries())
    if len(members) == 1:
        return members[0]
    return Annotated[typing.Union[members], Field(discriminator="kind")]  # noqa: UP007
