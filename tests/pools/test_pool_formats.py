"""Each pool format from a small realistic fixture, imported and replayed; the ``stored`` scorer."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from pool_helpers import (
    cli,
    import_pool,
    pool_metadata,
    query,
    replay_json,
    run_id_of,
    word_count,
    word_tokenizer,
    write_jsonl,
)

from ttscale.engines.base import Completion
from ttscale.errors import ConfigError
from ttscale.strategies.config import StoredScorerConfig
from ttscale.strategies.scorers import StoredScorer


@pytest.fixture(scope="module")
def tokenizer(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return word_tokenizer(tmp_path_factory.mktemp("tok") / "words")


def accuracy(rows: list[dict[str, object]]) -> dict[object, object]:
    return {row["budget"]: row["accuracy"] for row in rows}


def test_generic_pool(tmp_path: Path, tokenizer: Path) -> None:
    lines = [
        {"id": "g1", "question": "What is 2+2?", "answer": "4", "dataset": "gsm8k", "samples": [
            {"text": "The answer is 4", "completion_tokens": 5, "score": 0.9},
            {"text": "#### 5", "completion_tokens": 3, "score": 0.2},
            {"text": "I get 4", "score": 0.5, "confidence": 0.7},
        ]},
        {"id": "g2", "question": "What is 3*3?", "answer": "9", "samples": [
            {"text": "\\boxed{9}", "completion_tokens": 7, "score": 0.8},
            {"text": "\\boxed{6}", "completion_tokens": 4, "score": 0.1},
            {"text": "\\boxed{6}", "completion_tokens": 4, "score": 0.3},
        ]},
    ]  # fmt: skip
    ledger = tmp_path / "l.sqlite"
    result = import_pool(write_jsonl(tmp_path / "pool.jsonl", lines), "generic", ledger,
                         "--dataset", "math", "--tokenizer", str(tokenizer))  # fmt: skip
    assert result.exit_code == 0, result.output
    run_id = run_id_of(result)
    # Majority@3: g1 4,5,4 → right; g2 9,6,6 → wrong (@2 both ties go to the first sample,
    # right). Scored by the stored scores: both right.
    majority = replay_json(run_id, ledger, "majority:n=2,3")
    assert accuracy(majority) == {2: 1.0, 3: 0.5}
    assert majority[1]["tokens_per_item"] == (5 + 3 + word_count("I get 4") + 7 + 4 + 4) / 2
    assert accuracy(replay_json(run_id, ledger, "best_of_n:n=2,3,scorer.kind=stored")) == {
        2: 1.0,
        3: 1.0,
    }
    assert accuracy(replay_json(run_id, ledger, "weighted_vote:n=3,scorer.kind=stored")) == {3: 1.0}
    # The pool's scores are not mean token probabilities: only scorer kind "stored" reads them.
    mislabelled = cli("replay", run_id, "--ledger", str(ledger), "--strategy", "best_of_n:n=2")
    assert mislabelled.exit_code == 2 and "to scorer kind 'stored' only" in mislabelled.output
    # The line's dataset decides its grading rules; --dataset fills in for the line without one.
    assert query(ledger, "SELECT item_id, dataset FROM items ORDER BY 1") == [
        ("g1", "gsm8k"),
        ("g2", "math"),
    ]
    (confidence,) = query(
        ledger, "SELECT metadata_json->>'$.pool_confidence' FROM items WHERE item_id = 'g1'"
    )
    assert confidence[0] == "[null,null,0.7]"
    meta = pool_metadata(ledger, run_id)
    assert meta["answers"] == "ttscale" and meta["token_counts"]["counted"] == 1
    assert meta["token_counts"]["from_pool"] == 5


def test_search_and_learn_pool(tmp_path: Path, tokenizer: Path) -> None:
    rows = [
        {"problem": "Find $x$ if $x - 2 = 10$.", "answer": "12", "unique_id": "test/algebra/1.json",
         "completions": ["## Step 1: add 2\n\nThe final answer is: $\\boxed{12}$",
                         "## Step 1: guess\n\nThe final answer is: $\\boxed{13}$"],
         "scores": [[0.9, 0.2], [0.1, 0.8]], "completion_tokens": [40, 30],
         "pred": "\\boxed{13}", "pred_weighted@2": "\\boxed{13}", "pred_maj@2": "\\boxed{12}"},
        # DVTS writes one -1 for the row: the counts are the tokenizer's.
        {"problem": "What is $3^2$?", "answer": "9",
         "completions": ["$3^2 = 9$, so $\\boxed{9}$", "$\\boxed{6}$"],
         "scores": [[0.7], [0.3]], "completion_tokens": -1},
    ]  # fmt: skip
    ledger = tmp_path / "l.sqlite"
    result = import_pool(write_jsonl(tmp_path / "sal.jsonl", rows), "search-and-learn", ledger,
                         "--tokenizer", str(tokenizer))  # fmt: skip
    assert result.exit_code == 0, result.output
    run_id = run_id_of(result)
    assert query(ledger, "SELECT item_id FROM items ORDER BY 1") == [
        ("line-2",),
        ("test/algebra/1.json",),
    ]
    # The stored score is the last step's (search-and-learn's default): row 1 picks 13, wrong;
    # min or mean over steps would pick 12.
    assert accuracy(replay_json(run_id, ledger, "best_of_n:n=2,scorer.kind=stored")) == {2: 0.5}
    counted = sum(word_count(t) for t in rows[1]["completions"])  # type: ignore[union-attr]
    assert replay_json(run_id, ledger, "majority:n=2")[0]["tokens_per_item"] == (70 + counted) / 2


def test_lm_eval_pool(tmp_path: Path, tokenizer: Path) -> None:
    def line(
        doc_id: int, question: str, target: str, resps: list[str], filtered: object, name: str
    ) -> dict[str, object]:
        return {
            "doc_id": doc_id, "doc": {"question": question, "answer": f"... #### {target}"},
            "target": target, "arguments": {"gen_args_0": {"arg_0": f"Q: {question}\nA:", "arg_1": {}}},
            "resps": [resps], "filtered_resps": filtered, "filter": name,
            "metrics": ["exact_match"], "doc_hash": "d", "prompt_hash": "p", "target_hash": "t",
            "exact_match": 1.0,
        }  # fmt: skip

    first = ["I think 7 then 9", "#### 8", "no idea"]
    lines = [
        line(0, "Tom has 3 and gets 4. How many?", "7", first, [["7", "8", "[invalid]"]], "strict-match"),
        line(0, "Tom has 3 and gets 4. How many?", "7", first, [["9", "8", "[invalid]"]], "flexible-extract"),
        # take_first left one answer for two generations: ttscale extracts each.
        line(1, "What is 1+2?", "3", ["#### 3", "#### 4"], ["3"], "strict-match"),
    ]  # fmt: skip
    ledger = tmp_path / "l.sqlite"
    result = import_pool(write_jsonl(tmp_path / "samples_gsm8k.jsonl", lines), "lm-eval", ledger,
                         "--dataset", "gsm8k", "--tokenizer", str(tokenizer))  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "1 lines of other filters skipped" in result.stdout
    run_id = run_id_of(result)
    # Doc 0's first answer is the strict filter's 7 (ttscale alone would read 9): both right at 1.
    assert accuracy(replay_json(run_id, ledger, "majority:n=1,2")) == {1: 1.0, 2: 1.0}
    answers = query(
        ledger, "SELECT item_id, sample_index, extracted_answer FROM generation_calls ORDER BY 1, 2"
    )
    assert answers == [
        ("0", 0, "7"),
        ("0", 1, "8"),
        ("0", 2, "[no answer]"),
        ("1", 0, "3"),
        ("1", 1, "4"),
    ]


def test_stored_scorer_serves_only_stored_scores(tmp_path: Path, tokenizer: Path) -> None:
    live = StoredScorer(StoredScorerConfig())
    with pytest.raises(ConfigError, match="ttscale replay"):
        asyncio.run(live.score("q", Completion(text="x", token_ids=(1,), finish_reason="stop")))
    lines = [
        {"id": "a", "question": "1+1?", "answer": "2", "samples": [{"text": "2"}, {"text": "3"}]}
    ]
    ledger = tmp_path / "l.sqlite"
    imported = import_pool(write_jsonl(tmp_path / "p.jsonl", lines), "generic", ledger,
                           "--tokenizer", str(tokenizer))  # fmt: skip
    replayed = cli("replay", run_id_of(imported), "--ledger", str(ledger), "--strategy",
                   "best_of_n:n=2,scorer.kind=stored")  # fmt: skip
    assert replayed.exit_code == 2 and "holds no stored scores for item a" in replayed.output
