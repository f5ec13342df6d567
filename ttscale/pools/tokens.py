"""Token counts for pools that do not store them: a named tokenizer, recorded with the run."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ttscale.engines.config import EMBEDDED_MODEL


class TokenCounter:
    """Counts completion tokens with the tokenizer of ``spec``: the embedded model (default), a
    local model folder, or a Hugging Face id (from its cache; offline only if cached). Loaded on
    first use, so a pool that stores every count never loads one."""

    def __init__(self, spec: str = EMBEDDED_MODEL) -> None:
        self.spec = spec
        self.resolved: str | None = None
        self._tokenizer: Any = None

    def _load(self) -> Any:
        if self._tokenizer is None:
            from ttscale.model_prep import load_tokenizer, resolve_model

            self.resolved = resolve_model(self.spec)
            self._tokenizer = load_tokenizer(Path(self.resolved))
        return self._tokenizer

    def count(self, texts: Sequence[str]) -> list[int]:
        """Tokens of each text as the model would generate them (no special tokens added)."""
        if not texts:
            return []
        encoded = self._load()(list(texts), add_special_tokens=False)["input_ids"]
        return [len(ids) for ids in encoded]
