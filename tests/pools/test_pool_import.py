"""Importing a pool: bad lines reported and the rest imported, re-import adds nothing, s3://,
and the default tokenizer (the embedded model's) recorded with the run."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest
from pool_helpers import import_pool, pool_metadata, query, replay_json, run_id_of, word_tokenizer

GOOD = {"idx": 0, "question": "What is 1+1?", "gt": "2", "code": ["\\boxed{2}", "\\boxed{3}"],
        "pred": ["2", "3"], "score": [True, False]}  # fmt: skip


@pytest.fixture(scope="module")
def tokenizer(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return word_tokenizer(tmp_path_factory.mktemp("tok") / "words")


def test_bad_lines_are_reported_and_the_rest_imported(tmp_path: Path, tokenizer: Path) -> None:
    lines = [
        json.dumps(GOOD).encode(),
        b"{not json",
        json.dumps(GOOD | {"idx": 1, "pred": ["2"]}).encode(),  # one pred for two completions
        json.dumps({k: v for k, v in GOOD.items() if k != "question"} | {"idx": 2}).encode(),
        json.dumps(GOOD | {"idx": 3, "score": [True, "yes"]}).encode(),
        json.dumps(GOOD | {"idx": 4, "gt": " "}).encode(),
        b"\xff\xfe not utf-8",
        json.dumps(GOOD).encode(),  # idx 0 again
        json.dumps(GOOD | {"idx": 5}).encode(),
    ]
    pool = tmp_path / "pool.jsonl"
    pool.write_bytes(b"\n".join(lines) + b"\n")
    ledger = tmp_path / "l.sqlite"
    result = import_pool(pool, "qwen-math", ledger, "--tokenizer", str(tokenizer))
    assert result.exit_code == 0, result.output
    assert "2 items, 4 samples, 7 bad lines" in result.stdout
    run_id = run_id_of(result)
    errors = query(
        ledger,
        "SELECT object, line, field FROM input_errors WHERE run_id = ? ORDER BY line",
        [run_id],
    )
    assert errors == [
        (str(pool), 2, None), (str(pool), 3, "pred"), (str(pool), 4, "question"),
        (str(pool), 5, "score[1]"), (str(pool), 6, "gt"), (str(pool), 7, None),
        (str(pool), 8, "idx"),
    ]  # fmt: skip
    assert "line 8 field idx: duplicate idx '0' (first at line 1)" in result.output
    assert query(ledger, "SELECT item_id FROM items ORDER BY 1") == [("0",), ("5",)]


def test_a_pool_with_no_valid_line_exits_3(tmp_path: Path, tokenizer: Path) -> None:
    pool = tmp_path / "pool.jsonl"
    pool.write_text('{"idx": 0}\n')
    result = import_pool(pool, "qwen-math", tmp_path / "l.sqlite", "--tokenizer", str(tokenizer))
    assert result.exit_code == 3 and "no valid line" in result.output and "code" in result.output
    missing = import_pool(tmp_path / "none.jsonl", "qwen-math", tmp_path / "l.sqlite")
    assert missing.exit_code == 3 and "no pool at" in missing.output
    unknown = import_pool(pool, "jsonl", tmp_path / "l.sqlite")
    assert unknown.exit_code == 2 and "--format must be one of" in unknown.output


def test_reimport_adds_nothing(tmp_path: Path, tokenizer: Path) -> None:
    pool = tmp_path / "pool.jsonl"
    pool.write_text(json.dumps(GOOD) + "\n" + json.dumps(GOOD | {"idx": 1}) + "\n{bad\n")
    ledger = tmp_path / "l.sqlite"
    totals = "SELECT count(*), sum(completion_tokens) FROM generation_calls"
    counts = "SELECT (SELECT count(*) FROM items), (SELECT count(*) FROM item_decisions), (SELECT count(*) FROM input_errors), (SELECT count(*) FROM runs)"
    first = import_pool(pool, "qwen-math", ledger, "--tokenizer", str(tokenizer))
    assert "+2 units, +4 calls" in first.stdout
    before = query(ledger, totals) + query(ledger, counts)
    again = import_pool(pool, "qwen-math", ledger, "--tokenizer", str(tokenizer))
    assert (
        again.exit_code == 0
        and "+0 units, +0 calls); this pool was already imported" in again.stdout
    )
    assert run_id_of(again) == run_id_of(first)
    assert (
        query(ledger, totals) + query(ledger, counts) == before == [(4, before[0][1]), (2, 2, 1, 1)]
    )
    # Another tokenizer counts differently: a different run, never merged into the first.
    named = import_pool(
        pool, "qwen-math", ledger, "--tokenizer", str(tokenizer), "--run-id", "pool-b"
    )
    assert run_id_of(named) == "pool-b" and "+2 units" in named.stdout


def test_import_from_s3(tmp_path: Path, tokenizer: Path, s3_env: str) -> None:
    import boto3

    boto3.client("s3").put_object(
        Bucket=s3_env, Key="pools/math.jsonl", Body=json.dumps(GOOD).encode()
    )
    ledger = tmp_path / "l.sqlite"
    result = import_pool(
        f"s3://{s3_env}/pools/math.jsonl", "qwen-math", ledger, "--tokenizer", str(tokenizer)
    )
    assert result.exit_code == 0, result.output
    assert replay_json(run_id_of(result), ledger, "majority:n=1")[0]["accuracy"] == 1.0


def test_gzipped_pool_imports_as_the_same_run(tmp_path: Path, tokenizer: Path) -> None:
    text = (
        json.dumps(GOOD) + "\n" + json.dumps(GOOD | {"idx": 1, "pred": ["3", "2"]}) + "\n"
    ).encode()
    plain = tmp_path / "pool.jsonl"
    plain.write_bytes(text)
    by_suffix = tmp_path / "pool.jsonl.gz"
    by_suffix.write_bytes(gzip.compress(text))
    by_magic = tmp_path / "gzipped-without-suffix.jsonl"  # read by gzip's magic bytes
    by_magic.write_bytes(gzip.compress(text))
    results = [
        import_pool(
            path, "qwen-math", tmp_path / f"{path.name}.sqlite", "--tokenizer", str(tokenizer)
        )
        for path in (plain, by_suffix, by_magic)
    ]
    assert all(r.exit_code == 0 for r in results), [r.output for r in results]
    assert all("2 items, 4 samples, 0 bad lines" in r.stdout for r in results)
    assert len({run_id_of(r) for r in results}) == 1  # same pool, same run id
    ledger = tmp_path / f"{by_suffix.name}.sqlite"
    assert replay_json(run_id_of(results[1]), ledger, "majority:n=1")[0]["accuracy"] == 0.5
    cut = tmp_path / "cut.jsonl.gz"
    cut.write_bytes(gzip.compress(text)[:-12])
    broken = import_pool(cut, "qwen-math", tmp_path / "cut.sqlite", "--tokenizer", str(tokenizer))
    assert broken.exit_code == 3 and "not a readable gzip file" in broken.output


@pytest.mark.slow
def test_default_tokenizer_is_the_embedded_models(tmp_path: Path) -> None:
    from ttscale.engines.config import EMBEDDED_MODEL
    from ttscale.model_prep import default_embedded_dir, is_prepared, load_tokenizer

    if not is_prepared(default_embedded_dir()):
        pytest.skip("the embedded model is not prepared (ttscale models prepare)")
    pool = tmp_path / "pool.jsonl"
    pool.write_text(json.dumps(GOOD) + "\n")
    ledger = tmp_path / "l.sqlite"
    result = import_pool(pool, "qwen-math", ledger)
    assert result.exit_code == 0, result.output
    meta = pool_metadata(ledger, run_id_of(result))
    assert meta["token_counts"]["tokenizer"] == EMBEDDED_MODEL
    assert meta["token_counts"]["tokenizer_path"] == str(default_embedded_dir())
    embedded = load_tokenizer(default_embedded_dir())
    expected = [len(embedded.encode(code, add_special_tokens=False)) for code in GOOD["code"]]  # type: ignore[union-attr]
    calls = query(ledger, "SELECT completion_tokens FROM generation_calls ORDER BY sample_index")
    assert [c for (c,) in calls] == expected
    (versions,) = query(ledger, "SELECT versions_json->>'$.tokenizer' FROM runs")
    assert versions[0] == EMBEDDED_MODEL
