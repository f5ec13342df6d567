"""Input batches: every valid row is processed, every bad one reported with object, line, reason."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import duckdb
import pytest

from ttscale.errors import InputError
from ttscale.inputs import load_batch
from ttscale.storage import S3Store

ROWS = [
    '{"id": "q1", "question": "What is 2 plus 2?", "answer": "4"}',
    '{"id": "q2", "question": "What is 3 plus 3?", "answer": 6, "language": "de"}',
    "{not json",
    '{"id": "q3", "answer": "1"}',
    '{"id": "q4", "question": "   ", "answer": "1"}',
    '{"id": "q1", "question": "dup", "answer": "1"}',
    "[1, 2]",
    "",
    '{"id": "q5", "question": "What is 1 plus 1?", "answer": "2", "dataset": "arithmetic"}',
]


def test_bad_rows_are_reported_and_the_rest_processed(
    tmp_path: Path, write_jsonl: Callable[[Path, list[str]], Path]
) -> None:
    batch = load_batch(str(write_jsonl(tmp_path / "in.jsonl", ROWS)))
    assert [q.id for q in batch.questions] == ["q1", "q2", "q5"]
    assert batch.questions[1].answer == "6" and batch.questions[1].language == "de"
    by_line = {b.line: b for b in batch.bad_rows}
    assert sorted(by_line) == [3, 4, 5, 6, 7]
    assert "invalid JSON" in by_line[3].reason
    assert by_line[4].field == "question" and "Field required" in by_line[4].reason
    assert by_line[5].field == "question" and "empty" in by_line[5].reason
    assert by_line[6].field == "id" and "duplicate id 'q1'" in by_line[6].reason
    assert "not a JSON object" in by_line[7].reason
    assert all(b.object.endswith("in.jsonl") for b in batch.bad_rows)


def test_parquet_and_directory_prefix(
    tmp_path: Path, write_jsonl: Callable[[Path, list[str]], Path]
) -> None:
    write_jsonl(tmp_path / "a.jsonl", ROWS[:2])
    con = duckdb.connect()
    con.execute(
        "COPY (SELECT 'p' || i::VARCHAR AS id, 'What is ' || i::VARCHAR || ' plus 1?' AS question, "
        "i + 1 AS answer FROM range(3) t(i)) TO ? (FORMAT parquet)",
        [str(tmp_path / "b.parquet")],
    )
    (tmp_path / "notes.txt").write_text("ignored")
    batch = load_batch(str(tmp_path))
    assert [q.id for q in batch.questions] == ["q1", "q2", "p0", "p1", "p2"]
    assert batch.questions[-1].answer == "3"
    assert len(batch.objects) == 2 and not batch.bad_rows


def test_duplicate_ids_across_objects(
    tmp_path: Path, write_jsonl: Callable[[Path, list[str]], Path]
) -> None:
    write_jsonl(tmp_path / "a.jsonl", ROWS[:1])
    write_jsonl(tmp_path / "b.jsonl", ROWS[:1])
    batch = load_batch(str(tmp_path))
    assert len(batch.questions) == 1
    assert (
        batch.bad_rows[0].object.endswith("b.jsonl")
        and "a.jsonl line 1" in batch.bad_rows[0].reason
    )


def test_s3_prefix(s3_env: str) -> None:
    store = S3Store(s3_env)
    store.write_bytes("in/x.jsonl", "\n".join(ROWS).encode())
    batch = load_batch(f"s3://{s3_env}/in/")
    assert len(batch.questions) == 3 and len(batch.bad_rows) == 5
    assert batch.bad_rows[0].object == f"s3://{s3_env}/in/x.jsonl"


def test_missing_input_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="no such input"):
        load_batch(str(tmp_path / "nope.jsonl"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match=r"no \.jsonl"):
        load_batch(str(tmp_path / "empty"))


def test_bundled_demo_is_clean() -> None:
    from importlib.resources import files

    batch = load_batch(str(files("ttscale") / "data" / "demo.jsonl"))
    assert len(batch.questions) == 24 and not batch.bad_rows
    assert json.loads(batch.questions[0].model_dump_json())["dataset"] == "arithmetic"
