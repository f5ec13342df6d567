"""Strategy settings: frozen pydantic models, a discriminated union on ``kind``.

Each config expands into *units*, one per budget value: ``(kind, budget)``. What "budget" means
depends on the strategy: the sample count N for parallel strategies, the thinking-token cap B for
budget forcing, the round cap for refinement.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator


class _StrategyBase(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    temperature: float = Field(0.7, ge=0, le=2, description="Sampling temperature.")
    top_p: float = Field(0.95, gt=0, le=1, description="Nucleus sampling mass.")
    max_tokens: int = Field(
        256, ge=1, le=32768, description="Most completion tokens of one sample (thinking + answer)."
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
        default_factory=lambda: [4, 8, 16],
        title="Sample counts N",
        description="One unit per N: at most that many samples.",
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

    kind: Literal["majority"] = "majority"
    n: list[int] = Field(
        default_factory=lambda: [1, 2, 4, 8],
        title="Sample counts N",
        description="One unit per N: that many samples, then a majority vote.",
    )


class BudgetForcingConfig(_StrategyBase):
    """s1 budget forcing: cap thinking at B tokens, then force the delimiter and the answer cue.

    With ``extensions > 0``, an early end of thinking is suppressed and ``wait_text`` appended,
    up to that many times while budget remains; thinking never exceeds B.
    """

    kind: Literal["budget_forcing"] = "budget_forcing"
    temperature: float = Field(0.0, ge=0, le=2, description="0 = greedy, as in s1.")
    budgets_tokens: list[int] = Field(
        default_factory=lambda: [64, 128, 256],
        title="Thinking budgets B (tokens)",
        description="One unit per B: thinking capped at B tokens.",
    )
    extensions: int = Field(
        0, ge=0, le=16, description="Times to replace an early end of thinking with 'Wait'."
    )
    wait_text: str = Field(
        "Wait", description="Appended to extend thinking (translated by language forcing)."
    )
    answer_max_tokens: int = Field(32, ge=1, le=1024, description="Tokens for the forced answer.")
    language_forcing: Literal["none", "wait", "prefix", "system", "all"] = Field(
        "none",
        description="Crosslingual forcing: translated 'Wait', translated thinking prefix, "
        "'think and answer only in X' system prompt, or all three.",
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

    kind: Literal["mean_logprob"] = "mean_logprob"


class SelfCertaintyScorerConfig(_ScorerBase):
    """Self-certainty (Kang et al. 2025, arXiv 2502.18581): mean KL(uniform ‖ next-token dist.).

    Needs each position's top-k logprobs from the engine; squashed to [0, 1] as 1 − exp(−SC).
    """

    kind: Literal["self_certainty"] = "self_certainty"
    vocab_size: int = Field(49152, ge=2, description="Vocabulary size V of the sampling model.")


class RewardModelScorerConfig(_ScorerBase):
    """An outcome or process reward model served by ``vllm serve`` (pooling runner), over HTTP."""

    kind: Literal["reward_model"] = "reward_model"
    base_url: str = Field(..., description="Server root, e.g. http://prm:8000 (no /v1).")
    model: str = Field(..., description="Served reward model name.")
    endpoint: Literal["pooling", "classify"] = Field(
        "pooling",
        description="'pooling': /pooling (reward models, PRMs: one value or one per step); "
        "'classify': /classify (sequence classifiers: class probabilities).",
    )
    step_aggregate: Literal["last", "min", "mean", "prod"] = Field(
        "min", description="How a PRM's per-step scores become one score."
    )
    positive_index: int = Field(
        -1, description="Index of the 'correct' class in a [neg, pos] pair or probs list."
    )
    logits: bool = Field(
        False, description="The model returns raw logits: apply a sigmoid to get [0, 1]."
    )
    api_key_env: str = Field(
        "OPENAI_API_KEY", description="Environment variable holding the API key, if any."
    )
    timeout_s: float = Field(120.0, gt=0, description="Per-request timeout.")


ScorerConfig = Annotated[
    MeanLogprobScorerConfig | SelfCertaintyScorerConfig | RewardModelScorerConfig,
    Field(discriminator="kind"),
]


# --- parallel and adaptive strategies ----------------------------------------------------------------


class BestOfNConfig(_SampleCountBase):
    """Best-of-N: N samples, the one the scorer rates highest (ties: earliest sample)."""

    kind: Literal["best_of_n"] = "best_of_n"
    scorer: ScorerConfig = Field(default_factory=MeanLogprobScorerConfig)


class WeightedVoteConfig(_SampleCountBase):
    """Score-weighted vote: N samples, each answer's votes weighted by its score."""

    kind: Literal["weighted_vote"] = "weighted_vote"
    scorer: ScorerConfig = Field(default_factory=MeanLogprobScorerConfig)


class AdaptiveConsistencyConfig(_SampleCountBase):
    """Adaptive-Consistency (Aggarwal et al. 2023): sample until P(leader is the mode) ≥ threshold.

    Budget = the most samples (N_max). The rule is checked after every sample in index order.
    """

    kind: Literal["adaptive_consistency"] = "adaptive_consistency"
    threshold: float = Field(0.95, gt=0, le=1, description="Stop probability to reach.")
    rule: Literal["beta", "dirichlet", "auto"] = Field(
        "beta", description="'auto' = beta for ≤ 2 distinct answers, dirichlet for ≥ 3."
    )
    round_size: int = Field(
        2, ge=1, le=64, description="Samples drawn concurrently per round; smaller saves more."
    )


class ESCConfig(_SampleCountBase):
    """ESC (Li et al. 2024): sample in windows of w; stop when a whole window agrees.

    Budget = the most samples; the final answer is the majority over every sample drawn.
    """

    kind: Literal["esc"] = "esc"
    window: int = Field(4, ge=1, le=64, description="Window size w (drawn concurrently).")


class OptScaleConfig(_SampleCountBase):
    """OptScale (arXiv 2506.22376): fit TruncNormal(μ, σ) to the first k scores, then draw N*.

    N* = ⌈ln q / ln F(s*)⌉ clipped to [k, N_max]; N_max is the budget. MLE fit, or MAP when
    both priors are given.
    """

    kind: Literal["optscale"] = "optscale"
    k: int = Field(4, ge=1, le=256, description="Samples scored before N* is estimated.")
    q: float = Field(0.05, gt=0, lt=1, description="Accepted chance that no score exceeds s*.")
    s_star: float = Field(0.8, ge=0, le=1, description="Score threshold s* in [0, 1].")
    scorer: ScorerConfig = Field(default_factory=MeanLogprobScorerConfig)
    select: Literal["best_of", "weighted_vote"] = Field(
        "best_of", description="How the N* samples become one answer."
    )
    prior_mu: float | None = Field(None, description="MAP prior mean of μ (with prior_sigma).")
    prior_sigma: float | None = Field(None, gt=0, description="MAP prior σ (with prior_mu).")
    prior_strength: float = Field(4.0, gt=0, description="Prior worth, in pseudo-observations.")

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

    kind: Literal["refinement"] = "refinement"
    rounds: list[int] = Field(
        default_factory=lambda: [1, 2, 4],
        title="Round caps",
        description="One unit per cap: at most that many revisions.",
    )
    instruction: str = Field(
        "Review your previous solution step by step. If it is wrong, correct it; "
        "otherwise keep it. End with a line 'Final Answer: <answer>'.",
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
