"""One module per strategy kind, named after it: its config, coroutine and ``@strategy`` line.

``registry.load()`` imports every module here whose name does not start with "_"; adding a
strategy means adding a module here and its test. ``names()`` lists the kinds without importing
them, for callers that must stay light (the CLI's help).
"""

from __future__ import annotations

import pkgutil


def names() -> list[str]:
    """The kind of every strategy module here, alphabetically (a module is named after its kind)."""
    return [m.name for m in pkgutil.iter_modules(__path__) if not m.name.startswith("_")]
