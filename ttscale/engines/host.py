"""Keeps engines alive on one background event loop, so every shard in a process reuses them.

vLLM's AsyncLLM is bound to the loop it first ran on; Prefect runs tasks in worker threads with
loops of their own. Submitting every shard's coroutine to one long-lived loop avoids both
restarting the engine per shard and crossing loops.
"""

from __future__ import annotations

import asyncio
import atexit
import threading
from collections.abc import Awaitable, Callable
from typing import TypeVar

from ttscale.engines import EngineConfig, create_engine
from ttscale.engines.base import Engine

T = TypeVar("T")


class EngineHost:
    def __init__(self) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="ttscale-engine", daemon=True
        )
        self._thread.start()
        self._engines: dict[str, Engine] = {}
        self._lock = threading.Lock()

    async def _engine(self, config: EngineConfig) -> Engine:
        key = config.model_dump_json()
        if key not in self._engines:
            self._engines[key] = await create_engine(config)
        return self._engines[key]

    def run(self, config: EngineConfig, work: Callable[[Engine], Awaitable[T]]) -> T:
        """Run ``work(engine)`` on the host loop and wait for its result."""

        async def _run() -> T:
            return await work(await self._engine(config))

        with self._lock:  # one shard at a time per process: each already fills the engine
            return asyncio.run_coroutine_threadsafe(_run(), self._loop).result()

    def close(self) -> None:
        async def _close() -> None:
            for engine in self._engines.values():
                await engine.close()
            self._engines.clear()

        if self._loop.is_running():
            asyncio.run_coroutine_threadsafe(_close(), self._loop).result(timeout=60)
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=10)


_host: EngineHost | None = None


def engine_host() -> EngineHost:
    """The process-wide host (created on first use, closed at exit)."""
    global _host
    if _host is None:
        _host = EngineHost()
        atexit.register(_host.close)
    return _host
