"""Quiet by default: while a run works, library output (vLLM, Prefect, transformers) goes to a log.

The redirect is at the file-descriptor level, so it also catches what C extensions and child
processes write; ttscale's own progress and results go to a copy of the real terminal.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TextIO

from ttscale.cli.app import settings


@contextlib.contextmanager
def service_logs() -> Iterator[None]:
    """Send the service's log records (``ttscale.*``, INFO and up) to stderr while the block runs.

    Under ``terminal_output`` stderr is the run's log file, so the log tells what the run did.
    """
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logger = logging.getLogger("ttscale")
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        yield
    finally:
        handler.flush()
        logger.removeHandler(handler)
        logger.setLevel(level)


def _has_fds() -> bool:
    try:
        sys.stdout.fileno()
        sys.stderr.fileno()
    except (AttributeError, OSError, ValueError):
        return False  # e.g. Typer's test runner, which swaps in in-memory streams
    return True


@contextlib.contextmanager
def terminal_output(log_path: Path | None, *, restore: bool = True) -> Iterator[None]:
    """Send fds 1 and 2 to ``log_path`` (appending) while ttscale keeps printing to the terminal.

    With ``log_path=None`` (``--verbose``) nothing is redirected. With ``restore=False`` fds 1
    and 2 stay on the log after the block, for the rest of the process: engines and Prefect log
    their shutdown at interpreter exit, and that belongs in the log too. ttscale's own output
    keeps going to the terminal through ``settings``.
    """
    if log_path is None or not _has_fds():
        yield
        return
    log_path.parent.mkdir(parents=True, exist_ok=True)
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    terminal: list[TextIO] = [
        os.fdopen(fd, "w", buffering=1, encoding="utf-8", errors="replace") for fd in saved
    ]
    with log_path.open("ab") as log:
        os.dup2(log.fileno(), 1)
        os.dup2(log.fileno(), 2)
    settings.terminal = (terminal[0], terminal[1])
    try:
        yield
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        if restore:
            settings.terminal = None
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            for stream in terminal:
                stream.close()
