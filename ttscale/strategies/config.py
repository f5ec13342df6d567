"""What every strategy config shares: sampling settings, budgets, and the scorer configs.

Each strategy's own config lives in its module under ``strategies/kinds/``, a frozen subclass of
``StrategyConfigBase`` (or ``SampleCountConfigBase`` when the budget is a sample count) with a
``kind: Literal[...]`` field. Each config expands into *units*, one per budget value:
``(kind, budget)``. What "budget" means depends on the strategy: the sample count N for parallel
strategies, the thinking-token cap B for budget forcing, the round cap for refinement.

Titles, descriptions and defaults are what users see in the Prefect run form. Prefect 3.7's form
renders a pydantic discriminated union as an empty raw-JSON editor and a list of unions as JSON
editors, so the form-facing shapes are plain unions with a default (``ScorerConfig``) and one
optional field per kind (``StrategySet``); the discriminated ``StrategyConfig`` (built from the
registry) parses list input. ``StrategyConfig`` and every registered config class can still be
imported from this module by name.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator
from pydantic.json_schema import SkipJsonSchema


class StrategyConfigBase(BaseModel):
    """Settings every strategy has: how one sample is drawn, and the budgets to run."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    if TYPE_CHECKING:
        # Each subclass declares it as a Literal field; a field here would move it to the front
        # of every config's field order, and so of the run form and of every dump.
        kind: str

    temperature: float = Field(
        0.7, ge=0, le=2, title="Temperature", description="Sampling temperature; 0 is greedy."
    )
    top_p: float = Field(
        0.95, gt=0, le=1, title="Top-p", description="Nucleus sampling: probability mass kept."
    )
    max_tokens: int = Field(
        256,
        ge=1,
        le=32768,
        title="Max tokens per sample",
        description="Most completion tokens of one sample (thinking + answer).",
    )

    def budgets(self) -> list[int]:
        """The budget values this config expands into, one unit each."""
        raise NotImplementedError

    @staticmethod
    def _check_budgets(values: list[int]) -> list[int]:
        if not values:
            raise ValueError("give at least one budget value")
        if any(v < 1 for v in values):
            raise ValueError("budget values must be >= 1")
        if len(set(values)) != len(values):
            raise ValueError(f"duplicate budget values in {values}")
        return sorted(values)


class SampleCountConfigBase(StrategyConfigBase):
    """A strategy whose budget is a sample count: one unit per value of ``n``."""

    n: list[int] = Field(
        [4, 8, 16],
        title="Sample counts N",
        description="One result per N: at most that many samples per question.",
    )

    @field_validator("n")
    @classmethod
    def _valid_n(cls, v: list[int]) -> list[int]:
        return cls._check_budgets(v)

    def budgets(self) -> list[int]:
        return list(self.n)


# --- scorers --------------------------------------------------------------------------------------


class _ScorerBase(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class MeanLogprobScorerConfig(_ScorerBase):
    """exp(mean token logprob) of the completion: its geometric-mean token probability in [0, 1]."""

    model_config = ConfigDict(title="Mean token probability")

    kind: Literal["mean_logprob"] = Field("mean_logprob", title="Scorer kind")


class RewardModelScorerConfig(_ScorerBase):
    """An outcome or process reward model served by ``vllm serve`` (pooling runner), over HTTP."""

    model_config = ConfigDict(title="Reward model server")

    kind: Literal["reward_model"] = Field("reward_model", title="Scorer kind")
    base_url: str = Field(
        ..., title="Base URL", description="Server root, e.g. http://prm:8000 (no /v1)."
    )
    model: str = Field(..., title="Model", description="The served reward model name.")
    endpoint: Literal["pooling", "classify"] = Field(
        "pooling",
        title="Endpoint",
        description="'pooling': /pooling (reward models, PRMs: one value or one per step); "
        "'classify': /classify (sequence classifiers: class probabilities).",
    )
    step_aggregate: Literal["last", "min", "mean", "prod"] = Field(
        "min", title="Step aggregate", description="How a PRM's per-step scores become one score."
    )
    positive_index: int = Field(
        -1,
        title="Positive class index",
        description="Index of the 'correct' class in a [neg, pos] pair or probabilities list.",
    )
    logits: bool = Field(
        False,
        title="Returns logits",
        description="The model returns raw logits: apply a sigmoid to get [0, 1].",
    )
    api_key_env: str = Field(
        "OPENAI_API_KEY",
        title="API key variable",
        description="Environment variable holding the API key, if any.",
    )
    timeout_s: float = Field(120.0, gt=0, title="Request timeout (s)")


class StoredScorerConfig(_ScorerBase):
    """The scores stored with each sample of a replayed pool (an imported pool's reward-model
    scores, say), as the pool gives them: replay only, a live run has none to read."""

    model_config = ConfigDict(title="Stored scores (replay)")

    kind: Literal["stored"] = Field("stored", title="Scorer kind")


class SelfCertaintyScorerConfig(_ScorerBase):
    """Self-certainty (Kang et al. 2025): how far each token's distribution is from uniform,
    averaged over the completion, from the engine's top-k logprobs."""

    model_config = ConfigDict(title="Self-certainty")

    kind: Literal["self_certainty"] = Field("self_certainty", title="Scorer kind")
    top_logprobs: int = Field(
        20,
        ge=1,
        le=20,
        title="Top-k logprobs",
        description="Logprobs asked for per token; the mass outside them is spread evenly over "
        "the rest of the vocabulary (vLLM serves at most 20 by default).",
    )


ScorerConfig = (
    MeanLogprobScorerConfig
    | RewardModelScorerConfig
    | SelfCertaintyScorerConfig
    # Replay only: a live run refuses it (preflight), so the run form must not offer it, and a
    # Prefect server enforcing the deployment's schema refuses it; Python still validates it.
    | Annotated[StoredScorerConfig, SkipJsonSchema()]
)
"""Any scorer's settings, told apart by ``kind`` (a plain union: see the module docstring).
``stored`` is left out of JSON schemas (the run form): only ``ttscale replay`` can use it."""


def scorer_field() -> Any:
    """The ``scorer`` field of a strategy that scores its samples (mean token probability)."""
    return Field(
        MeanLogprobScorerConfig(),
        title="Scorer",
        description="How each sample is scored, in [0, 1].",
    )


if TYPE_CHECKING:
    StrategyConfig = StrategyConfigBase
    """For type checkers: any strategy config (at runtime, the registry's discriminated union)."""


def __getattr__(name: str) -> Any:
    """``StrategyConfig`` (the union of registered configs) and each config class by its name."""
    if name.startswith("__"):
        # The import system probes dunders (``__path__``) while this module is still being
        # imported by the strategies' own modules: loading the registry then would be a cycle.
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from ttscale.strategies import registry

    if name == "StrategyConfig":
        return registry.strategy_config_union()
    for entry in registry.entries():
        if entry.config.__name__ == name:
            return entry.config
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
