"""The report as data: what was run, curves with intervals, frontier, cutoffs and test findings.

``Report.model_dump_json()`` is the published JSON; Markdown and HTML render from this model.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from ttscale.analysis.curves import CurvePoint
from ttscale.analysis.frontier import FrontierStep
from ttscale.analysis.inverse import PairwiseDecline, TrendTest
from ttscale.analysis.recommend import Recommendation
from ttscale.analysis.saturation import SaturationFit
from ttscale.reports.thinking import ThinkingAxesRow

REPORT_SCHEMA_VERSION = 1


class ReportSettings(BaseModel):
    """How a report is computed. Frozen; validated on construction."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    tau: float = Field(default=0.5, ge=0)
    """Marginal-gain cutoff: accuracy points per 1k completion tokens worth paying for."""
    value_per_correct: float | None = Field(default=None, gt=0)
    """USD a correct answer is worth; with a price it sets λ of the utility rule."""
    lambda_per_1k_tokens: float | None = Field(default=None, ge=0)
    """λ of the utility rule in accuracy points per 1k tokens (overrides value_per_correct)."""
    price_per_million_tokens: float | None = Field(default=None, ge=0)
    """USD per 1M completion tokens."""
    prompt_price_per_million_tokens: float | None = Field(default=None, ge=0)
    """USD per 1M prompt tokens, added to the completion cost when set."""
    gpu_hour_price: float | None = Field(default=None, ge=0)
    """USD per GPU-hour; used when no token price is set."""
    throughput_tokens_per_second: float | None = Field(default=None, gt=0)
    """Completion tokens/s per GPU for GPU-hour pricing; measured from the ledger when unset."""
    bootstrap_resamples: int = Field(default=2000, ge=2000)
    """Paired cluster-bootstrap resamples over items."""
    permutation_resamples: int = Field(default=2000, ge=200)
    """Resamples of the inverse-scaling trend test."""
    seed: int = 0
    """Seed of every resampling step, so a report is reproducible."""
    epsilon: float = Field(default=0.01, gt=0)
    """Saturation threshold: marginal accuracy gain (fraction) per unit of budget."""
    alpha: float = Field(default=0.05, gt=0, lt=1)
    """Family-wise error rate of the inverse-scaling tests (Holm)."""
    confidence: float = Field(default=0.95, gt=0, lt=1)
    """Coverage of the bootstrap intervals."""
    decline_examples: int = Field(default=3, ge=0)
    """Example items shown per significant decline."""
    min_items: int = Field(default=30, ge=1)
    """Slices with fewer items get no recommendation."""
    min_accuracy: float = Field(default=0.05, ge=0, lt=1)
    """Slices whose best accuracy is below this get no recommendation (near zero)."""
    extrapolation_limit: float = Field(default=4.0, gt=1)
    """An extrapolated N* is shown only up to this multiple of the largest budget tried."""


class RunInfo(BaseModel):
    """What produced the numbers: model, engine, versions, prompts and seed (from ``runs``)."""

    run_id: str
    created_at: str
    fingerprint: str
    engine: str
    engine_kind: str

    @property
    def scripted(self) -> bool:
        """True for runs on the scripted test engine: no figure of theirs is a model's."""
        return self.engine_kind == "scripted"

    seed: int
    request: dict[str, Any] = {}
    versions: dict[str, Any] = {}
    prompts: dict[str, Any] = {}


class SummaryRow(BaseModel):
    """Per strategy × budget (optionally per slice): items, accuracy and token spend."""

    dataset: str | None = None
    language: str | None = None
    strategy: str
    budget: int
    items: int
    correct: int
    accuracy: float
    mean_completion_tokens: float
    total_completion_tokens: int
    mean_prompt_tokens: float
    total_prompt_tokens: int
    mean_thinking_tokens: float
    calls: int
    discarded_calls: int


class StopReasonCount(BaseModel):
    strategy: str
    budget: int
    stop_reason: str
    decisions: int


class DeclineExample(BaseModel):
    """An item right at the lower budget and wrong at the higher one (texts unescaped)."""

    item_id: str
    question: str
    gold: str
    lower_answer: str | None = None
    higher_answer: str | None = None


class InverseScalingFinding(BaseModel):
    """Decline tests of one strategy in one slice, and the budget cap they impose."""

    strategy: str
    pairwise: list[PairwiseDecline] = []
    trend: TrendTest | None = None
    cap_budget: int | None = None
    """Largest budget a recommendation may use; None when no decline is significant."""
    examples: list[DeclineExample] = []


class SliceReport(BaseModel):
    """Everything about one (dataset, language) slice."""

    dataset: str
    language: str
    items: int
    curves: list[CurvePoint] = []
    frontier: list[FrontierStep] = []
    frontier_configs: list[tuple[str, int]] = []
    recommendations: list[Recommendation] = []
    saturation: list[SaturationFit] = []
    inverse_scaling: list[InverseScalingFinding] = []
    withheld: str | None = None
    """Why no recommendation is made ("not enough evidence: ..."); None when one is made."""
    needed: str | None = None
    """What would make a recommendation possible (items, budgets)."""


class TokenTotals(BaseModel):
    """Totals over every call of the run (kept or discarded)."""

    calls: int = 0
    discarded_calls: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    """Attributed: every call's completion tokens, as the units count them."""
    thinking_tokens: int = 0
    scoring_calls: int = 0
    """Of ``calls``: scoring calls (a reward model reading a sample; they generate nothing)."""
    scoring_tokens: int = 0
    """Of ``prompt_tokens``: what the reward model read. Not on the completion-token axis."""

    def scoring_note(self) -> str:
        """Where scoring tokens are counted, or "" when the run scored with no model."""
        if not self.scoring_calls:
            return ""
        return (
            f"scoring tokens: {self.scoring_tokens} in {self.scoring_calls} reward-model calls, "
            "within the prompt tokens; the token axis counts completion tokens and leaves "
            "them out"
        )

    generated_tokens: int | None = None
    """Completion tokens the engine generated, each sample shared between units once (the
    sample cache); None in reports built without it."""

    @property
    def sweep_saving(self) -> float | None:
        """Attributed over generated tokens: how many times the sweep's units would have cost
        had each run alone (1.0 without sharing); None when unknown."""
        if not self.generated_tokens:
            return None
        return self.completion_tokens / self.generated_tokens


class Report(BaseModel):
    """A cost–accuracy report of one run."""

    schema_version: int = REPORT_SCHEMA_VERSION
    generated_at: str
    run: RunInfo
    settings: ReportSettings
    summary: list[SummaryRow] = []
    """Per strategy × budget over all slices (the first report's table)."""
    slice_summary: list[SummaryRow] = []
    stop_reasons: list[StopReasonCount] = []
    totals: TokenTotals = TokenTotals()
    measured_throughput_tokens_per_second: float | None = None
    lambda_per_1k_tokens: float
    """λ actually used by the utility rule."""
    slices: list[SliceReport] = []
    input_errors: int = 0
    errored_units: int = 0
    recommended_default: str | None = None
    """The strategy the run ran as the recommended adaptive default preset, if it did."""
    thinking_axes: list[ThinkingAxesRow] = []
    """Samples × thinking tokens per sample, per slice, of units that probed their thinking."""
    """Units whose strategy failed (stop_reason 'error'): excluded from every curve and summary."""


def strategy_label(strategy: str, recommended_default: str | None) -> str:
    """``strategy``, marked when it is the run's recommended adaptive default."""
    return f"{strategy} (recommended default)" if strategy == recommended_default else strategy
