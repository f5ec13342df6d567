"""Progress of running shards: running totals turned into deltas for listeners.

A Prefect flow running shards in-process registers process-wide listeners (its progress
artifact); ``run_batch`` hands its caller's listener straight to each shard.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

Listener = Callable[[int, int], None]
"""Called with (units finished, completion tokens) deltas."""

_listeners: list[Listener] = []
_lock = threading.Lock()


def add_listener(listener: Listener) -> None:
    with _lock:
        _listeners.append(listener)


def remove_listener(listener: Listener) -> None:
    with _lock:
        if listener in _listeners:
            _listeners.remove(listener)


class ShardProgress:
    """Turns a shard's running totals into deltas for ``listener``, or else for every
    process-wide listener."""

    def __init__(self, listener: Listener | None = None) -> None:
        self._listener = listener
        self._units = 0
        self._tokens = 0

    def __call__(self, units: int, tokens: int) -> None:
        du, dt = units - self._units, tokens - self._tokens
        self._units, self._tokens = units, tokens
        for listener in [self._listener] if self._listener else list(_listeners):
            listener(du, dt)
