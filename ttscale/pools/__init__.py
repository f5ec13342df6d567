"""Sample pools made by other tools, imported as runs that ``ttscale replay`` serves.

One module per format (``generic``, ``qwen_math``, ``search_and_learn``, ``lm_eval``) reads a
line into an ``ImportedItem``; ``writer.import_pool`` writes the pool through the ledger's normal
ingest, so an import is idempotent.
"""

from __future__ import annotations

from ttscale.pools import generic, lm_eval, qwen_math, search_and_learn
from ttscale.pools.model import ImportedItem, ImportedSample, LineError, PoolFormat

FORMATS: dict[str, PoolFormat] = {
    f.name: f for f in (generic.FORMAT, qwen_math.FORMAT, search_and_learn.FORMAT, lm_eval.FORMAT)
}

__all__ = ["FORMATS", "ImportedItem", "ImportedSample", "LineError", "PoolFormat"]
