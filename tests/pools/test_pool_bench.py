"""bench_token_efficiency --pool: an imported pool replayed side by side. Its majority@k rows are
what `ttscale pool import` + `ttscale replay` give on the same pool (the same import and replay
code), and every adaptive row's ratio and points are against majority@N of that run."""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
from pathlib import Path

from pool_helpers import import_pool, replay_json, run_id_of, word_tokenizer

BENCH = Path(__file__).resolve().parents[2] / "bench" / "bench_token_efficiency.py"


def _line(i: int) -> dict[str, object]:
    """Problem i: 4 samples; its answers agree more as i grows, and scores favour the right one."""
    gold = str(i)
    preds = [gold if (i + k) % 3 else str(i + 1) for k in range(4)]
    return {
        "idx": i, "question": f"What is {i}?", "gt": gold,
        "code": [f"So the answer is \\boxed{{{p}}} after {k} steps" for k, p in enumerate(preds)],
        "pred": preds, "score": [p == gold for p in preds],
        "pred_score": [[2.0 if p == gold else -1.0] for p in preds],
    }  # fmt: skip


def _rows(output: str) -> dict[str, list[str]]:
    """The bench's table rows, by method (and settings for the majority rows)."""
    rows: dict[str, list[str]] = {}
    for line in output.splitlines():
        fields = line.split()
        if fields and fields[0].startswith("majority@"):
            rows[fields[0]] = fields[1:]
    return rows


def test_bench_replays_an_imported_gzipped_pool(tmp_path: Path) -> None:
    tokenizer = word_tokenizer(tmp_path / "words")
    text = "".join(json.dumps(_line(i)) + "\n" for i in range(12))
    pool = tmp_path / "pool.jsonl.gz"
    pool.write_bytes(gzip.compress(text.encode()))
    result = subprocess.run(
        [sys.executable, str(BENCH), "--pool", str(pool), "--pool-format", "qwen-math",
         "--tokenizer", str(tokenizer), "--permutations", "0"],
        capture_output=True, text=True, timeout=600,
        env=os.environ | {"PYTHONPATH": str(BENCH.parents[1])},
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    rows = _rows(result.stdout)
    assert sorted(rows) == ["majority@1", "majority@2", "majority@3", "majority@4"]
    # The same pool through the CLI: the bench's majority@k rows are replay's figures.
    ledger = tmp_path / "cli.sqlite"
    run_id = run_id_of(import_pool(pool, "qwen-math", ledger, "--tokenizer", str(tokenizer)))
    for k in range(1, 5):
        (cli,) = replay_json(run_id, ledger, f"majority:n={k}")
        accuracy, tokens, ratio, points = rows[f"majority@{k}"]
        assert float(accuracy) == round(cli["accuracy"], 3)
        assert float(tokens) == cli["tokens_per_item"]
        reference = replay_json(run_id, ledger, "majority:n=4")[0]
        assert float(ratio.rstrip("x")) == round(
            reference["tokens_per_item"] / cli["tokens_per_item"], 2
        )
        assert float(points) == round(100 * (cli["accuracy"] - reference["accuracy"]), 1)
    # Scored methods read the pool's stored scores; the recommended default has its row.
    assert "scorer: stored" in result.stdout
    assert any(line.startswith("best_of_n ") for line in result.stdout.splitlines())
    assert any(line.startswith("recommended default ") for line in result.stdout.splitlines())
    # Side by side at the end: majority@N and both presets, each judged against the goal.
    tail = result.stdout.split("side by side", 1)[1].splitlines()
    assert [line.split()[0] for line in tail[1:4]] == ["majority@4", "recommended", "recommended"]
    assert all(" the goal " in line for line in tail[2:4])
