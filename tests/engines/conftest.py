"""Shared engine-test fixtures: a tiny random model and one vLLM engine on it."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import pytest
from tiny_model import build_tiny_model

from ttscale.engines.config import VLLMEngineConfig

T = TypeVar("T")

TINY_ENGINE_CONFIG = VLLMEngineConfig(
    # float32: the random model's logits are nearly tied, and bfloat16 would flip ties.
    dtype="float32",
    max_model_len=512,
    max_num_seqs=64,
    max_num_batched_tokens=4096,
    cpu_kv_cache_gib=1,
)


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random Qwen2 folder (2 layers, hidden 64) with a BPE tokenizer and chat template."""
    return shared_tiny_model_dir(tmp_path_factory)


class EngineRunner:
    """A started engine plus the event loop it lives on (its tasks are bound to that loop)."""

    def __init__(self, engine: Any, loop: asyncio.AbstractEventLoop) -> None:
        self.engine = engine
        self.loop = loop

    def run(self, coroutine: Coroutine[Any, Any, T]) -> T:
        return self.loop.run_until_complete(coroutine)


@pytest.fixture(scope="session")
def tiny_vllm(tiny_model_dir: Path) -> Iterator[EngineRunner]:
    """One ``VLLMEngine`` on the tiny model for the whole session, closed at the end."""
    pytest.importorskip("vllm", reason="vllm is not installed (pip install -e '.[cpu]')")
    with shared_tiny_vllm(tiny_model_dir) as runner:
        yield runner


# --- The session's one tiny model and engine, for test directories outside this one ---------------
# Fixtures defined here are visible under tests/engines/ only. Other directories (e.g.
# tests/strategies/conftest.py) find this module through pytest's plugin manager and
# call these helpers, so a session builds one tiny model and starts one engine on it in all.

_shared_model_dir: Path | None = None
_shared_runner: EngineRunner | None = None
_shared_users = 0


def shared_tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The session's tiny model folder, built on first use."""
    global _shared_model_dir
    if _shared_model_dir is None:
        _shared_model_dir = build_tiny_model(tmp_path_factory.mktemp("tiny-model"))
    return _shared_model_dir


@contextmanager
def shared_tiny_vllm(model_dir: Path) -> Iterator[EngineRunner]:
    """The session's ``VLLMEngine`` on the tiny model: started by its first user, closed when its
    last user is done (callers are session-scoped fixtures; ``model_dir`` is that of the first)."""
    global _shared_runner, _shared_users
    if _shared_runner is None:
        from ttscale.engines.vllm import VLLMEngine

        loop = asyncio.new_event_loop()
        try:
            engine = loop.run_until_complete(VLLMEngine.create(TINY_ENGINE_CONFIG, model_dir))
        except BaseException:
            loop.close()
            raise
        _shared_runner = EngineRunner(engine, loop)
    runner = _shared_runner
    _shared_users += 1
    try:
        yield runner
    finally:
        _shared_users -= 1
        if _shared_users == 0:
            _shared_runner = None
            runner.loop.run_until_complete(runner.engine.close())
            runner.loop.run_until_complete(_cancel_pending())
            runner.loop.close()


async def _cancel_pending() -> None:
    current = asyncio.current_task()
    pending = [task for task in asyncio.all_tasks() if task is not current]
    for task in pending:
        task.cancel()
    await asyncio.gather(*pending, return_exceptions=True)


@pytest.fixture(scope="module")
def deterministic_vllm(tiny_model_dir: Path) -> Iterator[EngineRunner]:
    """A ``VLLMEngine`` on the tiny model in deterministic mode (module-scoped, closed after)."""
    pytest.importorskip("vllm", reason="vllm is not installed (pip install -e '.[cpu]')")
    from ttscale.engines.vllm import VLLMEngine

    config = TINY_ENGINE_CONFIG.model_copy(update={"deterministic": True})
    loop = asyncio.new_event_loop()
    engine = loop.run_until_complete(VLLMEngine.create(config, tiny_model_dir))
    try:
        yield EngineRunner(engine, loop)
    finally:
        loop.run_until_complete(engine.close())
        loop.run_until_complete(_cancel_pending())
        loop.close()
