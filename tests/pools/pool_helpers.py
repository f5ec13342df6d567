"""Helpers for the pool-import tests: a tokenizer folder whose counts a test can recompute, the
CLI, and reading back what an import wrote (not package code)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from typer.testing import CliRunner, Result

from ttscale.cli import app
from ttscale.ledger import Ledger

runner = CliRunner()
_WORDS = re.compile(r"\w+|[^\w\s]+")


def word_count(text: str) -> int:
    """What ``word_tokenizer`` counts: words and runs of punctuation (HF ``Whitespace``)."""
    return len(_WORDS.findall(text))


def word_tokenizer(folder: Path) -> Path:
    """A local model folder whose tokenizer makes one token per word or punctuation run.

    Built with ``tokenizers`` alone (no hub, no weights): every word is the unknown token, so
    a count is exactly ``word_count`` and a test can recompute it independently.
    """
    from tokenizers import Tokenizer, models, pre_tokenizers

    folder.mkdir(parents=True, exist_ok=True)
    tokenizer = Tokenizer(models.WordLevel({"[UNK]": 0}, unk_token="[UNK]"))
    tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
    tokenizer.save(str(folder / "tokenizer.json"))
    (folder / "tokenizer_config.json").write_text(
        json.dumps({"tokenizer_class": "PreTrainedTokenizerFast", "unk_token": "[UNK]"})
    )
    (folder / "config.json").write_text(json.dumps({"model_type": "gpt2"}))
    return folder


def write_jsonl(path: Path, rows: list[Any]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def cli(*args: str) -> Result:
    return runner.invoke(app, list(args))


def import_pool(source: Path | str, fmt: str, ledger: Path, *extra: str) -> Result:
    return cli("pool", "import", str(source), "--format", fmt, "--ledger", str(ledger), *extra)


def replay_json(run_id: str, ledger: Path, strategy: str) -> list[dict[str, Any]]:
    """``ttscale replay --format json``'s rows."""
    result = cli(
        "replay", run_id, "--ledger", str(ledger), "--strategy", strategy, "--format", "json"
    )
    assert result.exit_code == 0, result.output
    return list(json.loads(result.stdout))


def run_id_of(result: Result) -> str:
    match = re.search(r"run (pool-[0-9a-f]{12}|\S+):", result.stdout)
    assert match, result.output
    return match[1]


def query(ledger: Path, sql: str, params: list[Any] | None = None) -> list[tuple[Any, ...]]:
    with Ledger(ledger, read_only=True) as led:
        return led.query(sql, params or [])[1]


def pool_metadata(ledger: Path, run_id: str) -> dict[str, Any]:
    (row,) = query(ledger, "SELECT request_json FROM runs WHERE run_id = ?", [run_id])
    return dict(json.loads(row[0])["pool"])
