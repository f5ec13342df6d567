"""The ``ttscale`` command: thin wrappers over the library that map errors to exit codes.

Each module registers its commands on ``app``; importing this package registers them all.
"""

from __future__ import annotations

from ttscale.cli import (
    compare,
    data,
    ledger_cmd,
    policy,
    pool,
    probe_replay,
    query,
    replay,
    run,
    service,
)
from ttscale.cli.app import app

__all__ = ["app", "main"]
_COMMANDS = (compare, data, ledger_cmd, policy, pool, probe_replay, query, replay, run, service)


def main() -> None:  # pragma: no cover - console entry point
    app()
