"""The records that cross process and storage boundaries: questions, bad rows, batch requests."""

from __future__ import annotations

import hashlib
import json
import os
import re
from typing import Annotated, Any

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    GetJsonSchemaHandler,
    WithJsonSchema,
    field_validator,
)
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import CoreSchema

from ttscale.engines.config import EngineConfig, VLLMEngineConfig
from ttscale.errors import ConfigError
from ttscale.strategies.strategy_set import StrategySet


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


def _tab(json_type: str, title: str, **schema: Any) -> WithJsonSchema:
    """The JSON schema of one member of an optional field: the run form shows ``title`` as its tab."""
    return WithJsonSchema({"type": json_type, "title": title, **schema})


class _OrStrategyList:
    """JSON schema of ``strategies``: the per-kind object, or the list form older callers send.

    Prefect servers check flow-run parameters against the deployment's schema, so the list form
    must be in it for REST callers to keep working; ``StrategySet`` validates both.
    """

    def __get_pydantic_json_schema__(
        self, core_schema: CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        listed = {
            "type": "array",
            "title": "As a list (JSON)",
            "items": {"type": "object"},
            "minItems": 1,
        }
        return {"anyOf": [handler(core_schema), listed]}


class ReportOptions(BaseModel):
    """How the run's report prices and weighs tokens. None of it changes the run id."""

    model_config = ConfigDict(frozen=True, extra="forbid", title="Report settings")

    price_in: float | None = Field(
        None, ge=0, title="Price per 1M input tokens (USD)", description="Prompt tokens; optional."
    )
    price_out: float | None = Field(
        None,
        ge=0,
        title="Price per 1M output tokens (USD)",
        description="Completion tokens; with it the report fills USD and cost per correct answer.",
    )
    gpu_hour: float | None = Field(
        None,
        ge=0,
        title="GPU price (USD per hour)",
        description="Used with the run's measured throughput when no token price is set.",
    )
    tau: float | None = Field(
        None,
        ge=0,
        title="τ (points per 1k tokens)",
        description="Marginal-gain cutoff: accuracy points per 1k tokens worth paying for "
        "(default 0.5).",
    )
    lambda_per_1k_tokens: float | None = Field(
        None,
        ge=0,
        title="λ (points per 1k tokens)",
        description="Cost weight of the utility rule (default: derived from prices, else τ).",
    )
    min_items: int | None = Field(
        None,
        ge=1,
        title="Items needed for a recommendation",
        description="Slices with fewer items get no recommendation (default 30).",
    )

    def settings_update(self) -> dict[str, Any]:
        """The ``ReportSettings`` fields these options set (unset options are left out)."""
        names = {
            "price_in": "prompt_price_per_million_tokens",
            "price_out": "price_per_million_tokens",
            "gpu_hour": "gpu_hour_price",
            "tau": "tau",
            "lambda_per_1k_tokens": "lambda_per_1k_tokens",
            "min_items": "min_items",
        }
        return {names[k]: v for k, v in self.model_dump().items() if v is not None}


RUN_ID_PATTERN = r"^[a-z0-9][a-z0-9-]{0,62}$"
LEDGER_ENV = "TTSCALE_LEDGER"
EMBEDDED_LEDGER = "ttscale-out/ledger.sqlite"
LEDGER_FROM_ENV = f"${{{LEDGER_ENV}:-{EMBEDDED_LEDGER}}}"
"""``BatchRequest.ledger_path``'s default as the run form shows it, in shell notation:
``$TTSCALE_LEDGER``, else the embedded ledger. It is resolved where the request is validated,
i.e. in the flow run's own process, so each pod's ``$TTSCALE_LEDGER`` decides, not the
environment of whatever process registered the deployment."""

# Only the ledger variable is expanded: a request from the UI must not read any other variable.
_LEDGER_REFERENCE = re.compile(
    rf"\$(?:{LEDGER_ENV}|\{{{LEDGER_ENV}(?::-(?P<fallback>.*))?\}})", re.DOTALL
)


def default_ledger() -> str:
    """The ledger when none is given: ``$TTSCALE_LEDGER`` (the service sets it, so every pod
    and every request uses one shared lake), else the embedded ``ttscale-out/ledger.sqlite``."""
    return os.environ.get(LEDGER_ENV) or EMBEDDED_LEDGER


def resolve_ledger(setting: str) -> str:
    """``setting`` itself, unless it is a reference to ``$TTSCALE_LEDGER`` (``$TTSCALE_LEDGER``,
    ``${TTSCALE_LEDGER}`` or ``${TTSCALE_LEDGER:-FALLBACK}``, as the run form's default is):
    then the variable's value, else the fallback. Unset with no fallback is an error."""
    reference = _LEDGER_REFERENCE.fullmatch(setting.strip())
    if reference is None:
        return setting
    value = os.environ.get(LEDGER_ENV) or reference["fallback"]
    if not value:
        raise ValueError(f"ledger {setting!r}: ${LEDGER_ENV} is not set here and names no fallback")
    return value


class BatchRequest(BaseModel):
    """One batch: the questions, the strategies and budgets to compare, and the engine."""

    # The Prefect run form of ttscale-batch is generated from this model: titles, descriptions
    # and defaults are user-facing. Defaults are values, not factories (a factory leaves no
    # default in the JSON schema, so the form would start empty); pydantic copies them.
    # revalidate_instances: an instance handed to a flow (or another model) is checked again,
    # so one built without validation cannot carry an unchecked run id into a run.
    model_config = ConfigDict(
        frozen=True, extra="forbid", title="Batch request", revalidate_instances="always"
    )

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
        LEDGER_FROM_ENV,
        validate_default=True,
        title="Ledger",
        description="The ledger lake: a local path (SQLite catalog, data in PATH.files/), "
        "ducklake:sqlite:PATH or ducklake:postgres:CONNINFO data_path=s3://…. The default "
        f"reads as in a shell: the service's ${LEDGER_ENV} where the run starts, "
        f"else {EMBEDDED_LEDGER}.",
    )
    run_id: (
        Annotated[str, _tab("string", "Given", pattern=RUN_ID_PATTERN)]
        | Annotated[None, _tab("null", "Derived")]
    ) = Field(
        None,
        title="Run id",
        description="Derived from the request unless given, so re-running the same batch "
        "resumes it instead of counting its tokens twice. Lowercase letters, digits and dashes.",
    )
    # Also accepts the list form [{kind: majority, n: [1, 2]}, ...] (YAML configs, REST callers).
    strategies: Annotated[StrategySet, _OrStrategyList()] = Field(
        StrategySet(),
        title="Strategies",
        description="Each strategy with its budgets (N samples, B thinking tokens or revision "
        "rounds). Set a strategy to Off to leave it out; at least one must stay on.",
    )
    engine: EngineConfig = Field(
        VLLMEngineConfig(), title="Engine", description="What generates the samples."
    )
    seed: int = Field(0, ge=0, title="Seed", description="Every sample's seed derives from it.")
    shard_size: int = Field(
        64, ge=1, title="Shard size (questions)", description="Questions per shard."
    )
    max_items: (
        Annotated[int, Field(ge=1), _tab("integer", "First N", minimum=1)]
        | Annotated[None, _tab("null", "All")]
    ) = Field(None, title="Max questions", description="All valid questions, or only the first N.")
    shard_deployment: (
        Annotated[str, _tab("string", "Deployment")]
        | Annotated[None, _tab("null", "In this process")]
    ) = Field(
        None,
        title="Shard deployment",
        description="Run shards in this flow's process, or each as a flow run of a deployment "
        "(e.g. 'ttscale-shard/gpu' on a GPU work pool) and wait for them all. Its workers must "
        "reach the output location, so use s3:// when they run on other machines.",
    )

    fail_on_error: float = Field(
        0.0,
        ge=0,
        le=1,
        title="Errored units allowed (fraction)",
        description="A run whose errored units (engine failures after retries) exceed this "
        "share of all units fails; below it, they are reported apart and a re-run retries them.",
    )

    report: ReportOptions = Field(
        ReportOptions(),
        title="Report",
        description="Prices, τ, λ and the evidence a recommendation needs. Unset: no money "
        "columns, default cutoffs. They do not change the run id.",
    )

    @field_validator("ledger_path")
    @classmethod
    def _resolved_ledger(cls, value: str) -> str:
        # Resolved once, here: shards and the ledger's record of the run get the actual lake.
        return resolve_ledger(value)

    @field_validator("run_id")
    @classmethod
    def _safe_run_id(cls, value: str | None) -> str | None:
        # Run ids name object prefixes, files and Prefect artifacts: never a path of their own.
        if value is not None and not re.fullmatch(RUN_ID_PATTERN, value):
            raise ValueError(
                f"run id {value!r} must match {RUN_ID_PATTERN} (lowercase letters, digits and "
                "dashes, starting with a letter or digit, at most 63 characters)"
            )
        return value

    def fingerprint(self) -> str:
        """Stable hash of what determines the results (not where they are written)."""
        # Where results go, how shards are dispatched and when a run counts as failed do not
        # change them; nor do the report's prices and cutoffs.
        placement = {
            "run_id", "output_uri", "ledger_path", "shard_deployment", "fail_on_error", "report",
        }  # fmt: skip
        payload = self.model_dump(mode="json", exclude=placement)
        # Hashed in the list form that requests had before StrategySet, so run ids stay the same.
        payload["strategies"] = [c.model_dump(mode="json") for c in self.strategies.configs()]
        return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:12]

    def resolved_run_id(self) -> str:
        """The run id: given, or derived from the fingerprint. Checked again here, because an
        instance built without validation (``model_copy(update=...)``) skips the validator."""
        run_id = self.run_id or f"run-{self.fingerprint()}"
        if not re.fullmatch(RUN_ID_PATTERN, run_id):
            raise ConfigError(f"run id {run_id!r} must match {RUN_ID_PATTERN}")
        return run_id
