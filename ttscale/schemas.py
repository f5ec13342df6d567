"""The records that cross process and storage boundaries: questions, bad rows, batch requests."""

from __future__ import annotations

import hashlib
import json
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from ttscale.engines.config import EngineConfig, VLLMEngineConfig
from ttscale.strategies.config import BudgetForcingConfig, MajorityConfig, StrategyConfig


class Question(BaseModel):
    """One input row: a question with its gold answer."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    id: str = Field(..., min_length=1, description="Unique within a batch.")
    question: str = Field(..., description="The question text shown to the model.")
    answer: str = Field(..., description="Gold final answer (a number, fraction or LaTeX).")
    language: str = Field("en", description="ISO 639-1 code of the question's language.")
    dataset: str = Field(
        "generic", description="Grading rules and report slice (gsm8k, mgsm, math...)."
    )
    metadata: dict[str, Any] = Field(default_factory=dict)

    @field_validator("id", "answer", mode="before")
    @classmethod
    def _numbers_as_text(cls, v: Any) -> Any:
        # Parquet and JSON often carry ids and answers as numbers; bool is not a valid answer.
        if isinstance(v, int | float) and not isinstance(v, bool):
            return str(v)
        return v

    @field_validator("question")
    @classmethod
    def _non_empty(cls, v: str) -> str:
        if not v.strip():
            raise ValueError("question is empty")
        return v

    @field_validator("answer")
    @classmethod
    def _answer_non_empty(cls, v: str) -> str:
        if not v.strip():
            raise ValueError("answer is empty")
        return v.strip()


class BadRow(BaseModel):
    """An input row that could not be used, and why. Reported, never silently dropped."""

    model_config = ConfigDict(frozen=True)

    object: str
    line: int = Field(..., description="1-based line (JSONL) or row (Parquet) number.")
    field: str | None = None
    reason: str


def _default_strategies() -> list[StrategyConfig]:
    return [MajorityConfig(), BudgetForcingConfig()]


class BatchRequest(BaseModel):
    """Everything one batch run needs. The Prefect run form is generated from this model."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    input_uri: str = Field(
        ...,
        title="Input",
        description="A JSONL/Parquet object or a prefix of them: s3://bucket/key, file:// or a path.",
    )
    output_uri: str = Field(
        "file://ttscale-out",
        title="Output",
        description="Where shard results, the errors object and reports are written.",
    )
    ledger_path: str = Field(
        "ttscale-out/ledger.duckdb", title="Ledger", description="The DuckDB ledger file (local)."
    )
    run_id: str | None = Field(
        None,
        title="Run id",
        description="Leave empty to derive it from the request, so re-running the same batch "
        "resumes it instead of counting its tokens twice.",
    )
    strategies: list[StrategyConfig] = Field(
        default_factory=lambda: _default_strategies(),
        title="Strategies",
        description="Each strategy with its budgets (N samples or B thinking tokens).",
    )
    engine: EngineConfig = Field(default_factory=VLLMEngineConfig, title="Engine")
    seed: int = Field(0, ge=0, title="Seed", description="Every sample's seed derives from it.")
    shard_size: int = Field(64, ge=1, title="Shard size", description="Items per shard.")
    max_items: int | None = Field(None, ge=1, description="Use only the first N valid items.")
    shard_deployment: str | None = Field(
        None,
        title="Shard deployment",
        description="Run each shard as a flow run of this deployment (e.g. 'ttscale-shard/gpu' on "
        "a GPU work pool) and wait for them all. Empty: run shards in this flow's process. "
        "Workers must reach output_uri, so use s3:// when they run on other machines.",
    )

    @model_validator(mode="after")
    def _distinct_strategies(self) -> BatchRequest:
        kinds = [s.kind for s in self.strategies]
        if len(set(kinds)) != len(kinds):
            raise ValueError(f"each strategy kind may appear once, got {kinds}")
        if not self.strategies:
            raise ValueError("give at least one strategy")
        return self

    def fingerprint(self) -> str:
        """Stable hash of what determines the results (not where they are written)."""
        # Where results go and how shards are dispatched do not change them.
        placement = {"run_id", "output_uri", "ledger_path", "shard_deployment"}
        payload = self.model_dump(mode="json", exclude=placement)
        return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:12]

    def resolved_run_id(self) -> str:
        return self.run_id or f"run-{self.fingerprint()}"
