"""``ttscale pool import --format qwen-math`` then ``ttscale replay`` reproduces the pool's own
maj@k exactly, on a held-out pool with planted answers, ties and empty preds."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from pool_helpers import (
    import_pool,
    pool_metadata,
    query,
    replay_json,
    run_id_of,
    word_count,
    word_tokenizer,
    write_jsonl,
)

PROBLEMS, SAMPLES = 100, 8


def qwen_line(
    idx: int, gt: str, codes: list[str], preds: list[str], scores: list[bool]
) -> dict[str, Any]:
    """One line as Qwen2.5-Math's math_eval.py writes it for MATH: the dataset's own fields,
    then idx, question, gt_cot, gt, and per sample code, pred, report and score."""
    question = f"Problem {idx}: what is the value of $x$ in case {idx}?"
    return {
        "idx": idx,
        "question": question,
        "gt_cot": f"We find $x = {gt}$, so the answer is $\\boxed{{{gt}}}$.",
        "gt": gt,
        "level": "Level 3",
        "type": "Algebra",
        "solution": f"We find $x = {gt}$, so the answer is $\\boxed{{{gt}}}$.",
        "problem": question,
        "code": codes,
        "pred": preds,
        "report": [None] * len(codes),
        "score": scores,
    }


def planted_pool(seed: int) -> list[dict[str, Any]]:
    """100 problems × 8 samples. Each sample's pred is the gold, one of two wrong answers, or ""
    (Qwen's parser found nothing); every tenth problem is a planted tie at k = 2, 4 and 8. Some
    completions end so that ttscale's own extraction would read another number than the pred
    ("after 2 checks"): only the pool's preds reproduce its maj@k."""
    rng = np.random.default_rng(seed)
    lines = []
    for idx in range(PROBLEMS):
        gold = str(int(rng.integers(10, 500)))
        wrong = [str(int(gold) + 1), str(int(gold) * 2)]
        if idx % 10 == 0:
            # a b a b c c b a: ties at k=2 (a, b), k=4 (a, b) and k=8 (a 3, b 3): a came first.
            first, second = (gold, wrong[0]) if idx % 20 == 0 else (wrong[0], gold)
            preds = [first, second, first, second, "", "", second, first]
        else:
            choices = rng.choice(4, size=SAMPLES, p=[0.45, 0.25, 0.15, 0.15])
            preds = [[gold, wrong[0], wrong[1], ""][c] for c in choices]
        codes = []
        for pred in preds:
            if not pred:
                codes.append("Let me think. The expression keeps growing and I cannot finish")
            elif rng.random() < 0.3:
                codes.append(f"Step one. The final value is {pred}, after 2 checks.")
            else:
                codes.append(f"Step one. So $x = {pred}$.\n\nThus $\\boxed{{{pred}}}$.")
        lines.append(qwen_line(idx, gold, codes, preds, [p == gold for p in preds]))
    return lines


def qwen_maj_at_k(line: dict[str, Any], k: int) -> bool:
    """rm_maj_eval.eval_maj_k_metrics for one line: group the first k preds by exact string,
    the most common (first on a tie), scored by its first sample's score."""
    preds = line["pred"][:k]
    majority = Counter(preds).most_common(1)[0][0]
    return bool(line["score"][preds.index(majority)])


@pytest.fixture(scope="module")
def tokenizer(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return word_tokenizer(tmp_path_factory.mktemp("tok") / "words")


def test_replay_reproduces_the_pools_majority_at_k(tmp_path: Path, tokenizer: Path) -> None:
    lines = planted_pool(seed=11)
    # The pool must exercise what could break the equality: ties, and "" among the leaders.
    tied = sum(
        1
        for line in lines
        for k in (2, 4, 8)
        if len(
            [
                c
                for c in Counter(line["pred"][:k]).values()
                if c == max(Counter(line["pred"][:k]).values())
            ]
        )
        > 1
    )
    empty_leads = sum(Counter(line["pred"][:2]).most_common(1)[0][0] == "" for line in lines)
    assert tied >= 10 and empty_leads >= 1
    pool = write_jsonl(tmp_path / "test_qwen25-math-cot_-1_seed0_t0.7_s0_e-1.jsonl", lines)
    ledger = tmp_path / "l.sqlite"

    imported = import_pool(pool, "qwen-math", ledger, "--tokenizer", str(tokenizer))
    assert imported.exit_code == 0, imported.output
    run_id = run_id_of(imported)
    rows = replay_json(run_id, ledger, "majority:n=1,2,4,8")

    expected = {k: sum(qwen_maj_at_k(line, k) for line in lines) / PROBLEMS for k in (1, 2, 4, 8)}
    assert {row["budget"]: row["accuracy"] for row in rows} == expected
    assert pool_metadata(ledger, run_id)["pool_majority_at_k"] == {
        str(k): v for k, v in expected.items()
    }
    # Tokens: counted by the named tokenizer (the pool has none), the first k samples each.
    for row in rows:
        k = row["budget"]
        spent = sum(word_count(code) for line in lines for code in line["code"][:k])
        assert row["tokens_per_item"] == round(spent / PROBLEMS, 1)
    meta = pool_metadata(ledger, run_id)
    assert meta["token_counts"] == {
        "from_pool": 0, "counted": PROBLEMS * SAMPLES, "tokenizer": str(tokenizer),
        "tokenizer_path": str(tokenizer),
    }  # fmt: skip
    assert meta["verdict_disagreements"] == 0 and meta["graded_samples"] == PROBLEMS * SAMPLES


def test_ttscale_extraction_would_not_reproduce_it(tmp_path: Path, tokenizer: Path) -> None:
    """The check above can fail: voting on ttscale's re-extraction of the same texts (what a
    replay that ignored the pool's preds would do) gives other accuracies on this pool."""
    from ttscale.grading import extract_answer, is_correct
    from ttscale.strategies.common import majority_vote

    lines = planted_pool(seed=11)
    for k in (1, 2, 4, 8):
        reextracted = sum(
            is_correct(
                majority_vote([extract_answer(c, "math") for c in line["code"][:k]], "math").winner,
                line["gt"],
                "math",
            )
            for line in lines
        )
        if reextracted / PROBLEMS != sum(qwen_maj_at_k(line, k) for line in lines) / PROBLEMS:
            return
    pytest.fail("re-extracted answers reproduce the pool's maj@k too: the test cannot tell")


def test_disagreeing_verdicts_and_merged_answers_are_reported(
    tmp_path: Path, tokenizer: Path
) -> None:
    lines = [
        # The pool calls "0.5" right for gold "1/2" (ttscale agrees), and "7" right (it is not).
        qwen_line(0, "\\frac{1}{2}", ["\\boxed{0.5}", "\\boxed{\\frac{1}{2}}", "\\boxed{7}"],
                  ["0.5", "\\frac{1}{2}", "7"], [True, True, True]),
        qwen_line(1, "3", ["\\boxed{3}", "\\boxed{4}", "\\boxed{3}"], ["3", "4", "3"], [True, False, True]),
    ]  # fmt: skip
    ledger = tmp_path / "l.sqlite"
    result = import_pool(write_jsonl(tmp_path / "p.jsonl", lines), "qwen-math", ledger,
                         "--tokenizer", str(tokenizer))  # fmt: skip
    assert result.exit_code == 0, result.output
    meta = pool_metadata(ledger, run_id_of(result))
    assert meta["graded_samples"] == 6 and meta["verdict_disagreements"] == 1
    (example,) = meta["disagreement_examples"]
    assert (example["item"], example["sample"], example["pool"], example["ttscale"]) == (
        "0",
        2,
        True,
        False,
    )
    assert meta["merged_answer_items"] == 1  # "0.5" and "\frac{1}{2}" vote together here
    assert "disagree on 1 of 6 samples" in result.stdout
    # The pool's verdicts stay with the items; accuracy is ttscale's grading.
    (verdicts,) = query(
        ledger, "SELECT metadata_json->>'$.pool_verdicts' FROM items WHERE item_id = '0'"
    )
    assert verdicts[0] == "[true,true,true]"
