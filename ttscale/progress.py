"""Process-wide progress listeners, so a CLI can show a bar for a flow running in-process."""

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
    """Turns a shard's running totals into deltas for every listener."""

    def __init__(self) -> None:
        self._units = 0
        self._tokens = 0

    def __call__(self, units: int, tokens: int) -> None:
        du, dt = units - self._units, tokens - self._tokens
        self._units, self._tokens = units, tokens
        for listener in list(_listeners):
            listener(du, dt)
