"""Strategy settings: frozen pydantic models, one per ``kind``, and ``StrategySet`` to pick them.

Each config expands into *units*, one per budget value: ``(kind, budget)``. What "budget" means
depends on the strategy: the sample count N for parallel strategies, the thinking-token cap B for
budget forcing, the round cap for refinement.

Titles, descriptions and defaults here are what users see in the Prefect run form. Prefect 3.7's
form renders a pydantic discriminated union as an empty raw-JSON editor and a list of unions as
JSON editors, so the form-facing shapes are plain unions with a default (``ScorerConfig``) and one
optional field per kind (``StrategySet``); the discriminated ``StrategyConfig`` parses list input.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    field_validator,
    model_validator,
)


class _StrategyBase(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

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


class _SampleCountBase(_StrategyBase):
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


class MajorityConfig(_SampleCountBase):
    """Self-consistency: N independent samples, majority vote over extracted answers.

    Ties go to the answer that reached the winning count first (earliest sample).
    """

    model_config = ConfigDict(title="Majority vote")

    kind: Literal["majority"] = Field("majority", title="Strategy kind")
    n: list[int] = Field(
        [1, 2, 4, 8],
        title="Sample counts N",
        description="One result per N: that many samples per question, then a majority vote.",
    )


class BudgetForcingConfig(_StrategyBase):
    """s1 budget forcing: cap thinking at B tokens, then force the delimiter and the answer cue.

    With ``extensions > 0``, an early end of thinking is suppressed and ``wait_text`` appended,
    up to that many times while budget remains; thinking never exceeds B.
    """

    model_config = ConfigDict(title="Budget forcing")

    kind: Literal["budget_forcing"] = Field("budget_forcing", title="Strategy kind")
    temperature: float = Field(
        0.0, ge=0, le=2, title="Temperature", description="0 is greedy, as in s1."
    )
    budgets_tokens: list[int] = Field(
        [64, 128, 256],
        title="Thinking budgets B (tokens)",
        description="One result per B: thinking capped at B tokens.",
    )
    extensions: int = Field(
        0,
        ge=0,
        le=16,
        title="Extensions",
        description="Times an early end of thinking is replaced with the wait text.",
    )
    wait_text: str = Field(
        "Wait",
        title="Wait text",
        description="Appended to extend thinking (translated by language forcing).",
    )
    answer_max_tokens: int = Field(
        32, ge=1, le=1024, title="Answer tokens", description="Tokens for the forced answer."
    )
    language_forcing: Literal["none", "wait", "prefix", "system", "all"] = Field(
        "none",
        title="Language forcing",
        description="Keep thinking in the question's language: a translated 'Wait', a translated "
        "thinking prefix, a 'think and answer only in X' system prompt, or all three.",
    )

    @field_validator("budgets_tokens")
    @classmethod
    def _valid_budgets(cls, v: list[int]) -> list[int]:
        return cls._check_budgets(v)

    def budgets(self) -> list[int]:
        return list(self.budgets_tokens)


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


# A self-certainty scorer needs per-position top-k logprobs, which no engine returns yet: it is
# not offered until one does (its formula is in scorers.self_certainty).
ScorerConfig = MeanLogprobScorerConfig | RewardModelScorerConfig
"""Any scorer's settings, told apart by ``kind`` (a plain union: see the module docstring)."""


def _scorer_field() -> Any:
    return Field(
        MeanLogprobScorerConfig(),
        title="Scorer",
        description="How each sample is scored, in [0, 1].",
    )


# --- parallel and adaptive strategies ----------------------------------------------------------------


class BestOfNConfig(_SampleCountBase):
    """Best-of-N: N samples, the one the scorer rates highest (ties: earliest sample)."""

    model_config = ConfigDict(title="Best-of-N")

    kind: Literal["best_of_n"] = Field("best_of_n", title="Strategy kind")
    scorer: ScorerConfig = _scorer_field()


class WeightedVoteConfig(_SampleCountBase):
    """Score-weighted vote: N samples, each answer's votes weighted by its score."""

    model_config = ConfigDict(title="Score-weighted vote")

    kind: Literal["weighted_vote"] = Field("weighted_vote", title="Strategy kind")
    scorer: ScorerConfig = _scorer_field()


class AdaptiveConsistencyConfig(_SampleCountBase):
    """Adaptive-Consistency (Aggarwal et al. 2023): sample until P(leader is the mode) ≥ threshold.

    Budget = the most samples (N_max). The rule is checked after every sample in index order.
    """

    model_config = ConfigDict(title="Adaptive-Consistency")

    kind: Literal["adaptive_consistency"] = Field("adaptive_consistency", title="Strategy kind")
    threshold: float = Field(
        0.95,
        gt=0,
        le=1,
        title="Stop threshold",
        description="Stop once P(leading answer is the mode) reaches it.",
    )
    rule: Literal["beta", "dirichlet", "auto"] = Field(
        "beta",
        title="Stopping rule",
        description="'auto' = beta for ≤ 2 distinct answers, dirichlet for ≥ 3.",
    )
    round_size: int = Field(
        2,
        ge=1,
        le=64,
        title="Samples per round",
        description="Drawn concurrently per round; smaller saves more.",
    )


class ESCConfig(_SampleCountBase):
    """ESC (Li et al. 2024): sample in windows of w; stop when a whole window agrees.

    Budget = the most samples; the final answer is the majority over every sample drawn.
    """

    model_config = ConfigDict(title="Early-stopping self-consistency (ESC)")

    kind: Literal["esc"] = Field("esc", title="Strategy kind")
    window: int = Field(
        4, ge=1, le=64, title="Window size w", description="Samples drawn concurrently per window."
    )


class OptScaleConfig(_SampleCountBase):
    """OptScale (arXiv 2506.22376): fit TruncNormal(μ, σ) to the first k scores, then draw N*.

    N* = ⌈ln q / ln F(s*)⌉ clipped to [k, N_max]; N_max is the budget. MLE fit, or MAP when
    both priors are given.
    """

    model_config = ConfigDict(title="OptScale")

    kind: Literal["optscale"] = Field("optscale", title="Strategy kind")
    k: int = Field(
        4, ge=1, le=256, title="Warm-up samples k", description="Scored before N* is estimated."
    )
    q: float = Field(
        0.05, gt=0, lt=1, title="Risk q", description="Accepted chance that no score exceeds s*."
    )
    s_star: float = Field(
        0.8, ge=0, le=1, title="Score threshold s*", description="A score in [0, 1]."
    )
    scorer: ScorerConfig = _scorer_field()
    select: Literal["best_of", "weighted_vote"] = Field(
        "best_of", title="Selection", description="How the N* samples become one answer."
    )
    prior_mu: float | None = Field(
        None, title="Prior mean of μ", description="MAP prior; give it with the prior σ."
    )
    prior_sigma: float | None = Field(
        None, gt=0, title="Prior σ", description="MAP prior; give it with the prior mean."
    )
    prior_strength: float = Field(
        4.0, gt=0, title="Prior strength", description="Worth of the prior, in pseudo-samples."
    )

    @model_validator(mode="after")
    def _priors_together(self) -> OptScaleConfig:
        if (self.prior_mu is None) != (self.prior_sigma is None):
            raise ValueError("give both prior_mu and prior_sigma, or neither")
        return self


class RefinementConfig(_StrategyBase):
    """Sequential refinement: the model re-reads its previous answer and may revise it.

    Budget = the most re-think rounds after the first attempt; stops early when a round's answer
    repeats the previous round's.
    """

    model_config = ConfigDict(title="Sequential refinement")

    kind: Literal["refinement"] = Field("refinement", title="Strategy kind")
    rounds: list[int] = Field(
        [1, 2, 4],
        title="Round caps",
        description="One result per cap: at most that many revisions.",
    )
    instruction: str = Field(
        "Review your previous solution step by step. If it is wrong, correct it; "
        "otherwise keep it. End with a line 'Final Answer: <answer>'.",
        title="Revision instruction",
        description="The user turn that asks for a revision.",
    )

    @field_validator("rounds")
    @classmethod
    def _valid_rounds(cls, v: list[int]) -> list[int]:
        return cls._check_budgets(v)

    def budgets(self) -> list[int]:
        return list(self.rounds)


StrategyConfig = Annotated[
    MajorityConfig
    | BudgetForcingConfig
    | BestOfNConfig
    | WeightedVoteConfig
    | AdaptiveConsistencyConfig
    | ESCConfig
    | OptScaleConfig
    | RefinementConfig,
    Field(discriminator="kind"),
]
