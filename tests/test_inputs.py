"""Input batches: every valid row is processed, every bad one reported with object, line, reason."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import duckdb
import pytest

from ttscale.errors import InputError
from ttscale.inputs import ensure_questions, load_batch
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


# --- inputs as they come in the wild ----------------------------------------------------------

GOOD = [
    b'{"id": "w1", "question": "What is 2 plus 2?", "answer": "4"}',
    b'{"id": "w2", "question": "Was ist 3 plus 3?", "answer": "6", "language": "de"}',
]


def test_bom_and_crlf_are_accepted(tmp_path: Path) -> None:
    path = tmp_path / "windows.jsonl"
    path.write_bytes(b"\xef\xbb\xbf" + b"\r\n".join(GOOD) + b"\r\n")
    batch = load_batch(str(path))
    assert [q.id for q in batch.questions] == ["w1", "w2"] and not batch.bad_rows
    assert batch.questions[1].answer == "6"


def test_crlf_keeps_line_numbers(tmp_path: Path) -> None:
    path = tmp_path / "crlf.jsonl"
    path.write_bytes(b"\r\n".join([GOOD[0], b"{oops", b"", GOOD[1]]))
    batch = load_batch(str(path))
    assert [q.id for q in batch.questions] == ["w1", "w2"]
    assert [(b.line, b.reason.startswith("invalid JSON")) for b in batch.bad_rows] == [(2, True)]


def test_invalid_utf8_line_is_a_bad_row_and_the_rest_is_read(tmp_path: Path) -> None:
    latin1 = '{"id": "w3", "question": "Combien font 2 fois 2 ? é", "answer": "4"}'.encode(
        "latin-1"
    )
    path = tmp_path / "mixed.jsonl"
    path.write_bytes(b"\n".join([GOOD[0], latin1, GOOD[1], b""]))
    batch = load_batch(str(path))
    assert [q.id for q in batch.questions] == ["w1", "w2"]
    [bad] = batch.bad_rows
    assert bad.line == 2 and bad.object.endswith("mixed.jsonl")
    assert bad.reason.startswith("not valid UTF-8") and "0xe9" in bad.reason
    assert not any("\ufffd" in q.question for q in batch.questions)


def test_no_valid_question_is_an_input_error(
    tmp_path: Path, write_jsonl: Callable[[Path, list[str]], Path]
) -> None:
    bad = write_jsonl(tmp_path / "bad.jsonl", ["{oops", "[1]", '{"id": "x", "answer": "1"}'])
    with pytest.raises(InputError, match=r"no valid question in .*bad\.jsonl: 3 bad rows") as err:
        load_batch(str(bad))
    assert "line 1" in str(err.value) and "invalid JSON" in str(err.value)
    assert "\n" not in str(err.value)
    # A preflight can load without the check and apply it itself.
    batch = load_batch(str(bad), require_questions=False)
    assert len(batch.bad_rows) == 3 and not batch.questions
    with pytest.raises(InputError, match="3 bad rows"):
        ensure_questions(batch, str(bad))

    empty = tmp_path / "empty.jsonl"
    empty.write_bytes(b"\r\n\n")
    with pytest.raises(InputError, match=r"no valid question in .*: 1 object with no rows"):
        load_batch(str(empty))


def test_plan_batch_refuses_an_input_without_questions(
    tmp_path: Path, write_jsonl: Callable[[Path, list[str]], Path]
) -> None:
    from ttscale.schemas import BatchRequest
    from ttscale.service import plan_batch, resolve_run

    request = BatchRequest.model_validate(
        {
            "input_uri": str(write_jsonl(tmp_path / "in.jsonl", ["{oops"])),
            "output_uri": f"file://{tmp_path}/out",
            "ledger_path": str(tmp_path / "out" / "ledger.duckdb"),
            "engine": {"kind": "scripted"},
        }
    )
    with pytest.raises(InputError, match="no valid question"):
        plan_batch(resolve_run(request))
    assert not (tmp_path / "out").exists(), "nothing is written for an unusable input"


def test_missing_bucket_and_prefix_are_input_errors(s3_env: str) -> None:
    with pytest.raises(InputError, match="no such bucket 'ttscale-missing-bucket'"):
        load_batch("s3://ttscale-missing-bucket/in/")
    with pytest.raises(InputError, match=r"no \.jsonl"):
        load_batch(f"s3://{s3_env}/no/such/prefix/")
    with pytest.raises(InputError, match=r"no \.jsonl"):
        load_batch(f"s3://{s3_env}/missing.jsonl")


def test_s3_object_with_bom_crlf_and_bad_bytes(s3_env: str) -> None:
    S3Store(s3_env).write_bytes(
        "w/x.jsonl", b"\xef\xbb\xbf" + GOOD[0] + b"\r\n\xff\xfe\r\n" + GOOD[1]
    )
    batch = load_batch(f"s3://{s3_env}/w/x.jsonl")
    assert [q.id for q in batch.questions] == ["w1", "w2"]
    assert [(b.line, b.object) for b in batch.bad_rows] == [(2, f"s3://{s3_env}/w/x.jsonl")]
