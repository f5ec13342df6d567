"""Engines behind one protocol. Backends are created by kind from a plain registry.

Only ``engines/vllm.py`` imports vllm, and only when a vLLM engine is created.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from ttscale.engines.base import Completion, Engine, Generation, SamplingSpec
from ttscale.engines.config import (
    EngineConfig,
    OpenAIEngineConfig,
    ScriptedEngineConfig,
    VLLMEngineConfig,
)


async def _create_vllm(config: Any) -> Engine:
    from ttscale.engines.vllm import VLLMEngine
    from ttscale.model_prep import resolve_model

    return await VLLMEngine.create(config, resolve_model(config.model))


async def _create_openai(config: Any) -> Engine:
    from ttscale.engines.openai import OpenAICompatibleEngine

    return OpenAICompatibleEngine(config)


async def _create_scripted(config: Any) -> Engine:
    from ttscale.engines.scripted import ScriptedEngine

    return ScriptedEngine(config)


ENGINE_FACTORIES: dict[str, Callable[[Any], Awaitable[Engine]]] = {
    "vllm": _create_vllm,
    "openai": _create_openai,
    "scripted": _create_scripted,
}


async def create_engine(config: EngineConfig) -> Engine:
    """A ready engine for ``config``."""
    return await ENGINE_FACTORIES[config.kind](config)


def model_name(config: EngineConfig) -> str:
    """The model a config names, for profile selection and reports."""
    return str(getattr(config, "model", None) or getattr(config, "script", "scripted"))


__all__ = [
    "Completion",
    "Engine",
    "EngineConfig",
    "Generation",
    "OpenAIEngineConfig",
    "SamplingSpec",
    "ScriptedEngineConfig",
    "VLLMEngineConfig",
    "create_engine",
    "model_name",
]
