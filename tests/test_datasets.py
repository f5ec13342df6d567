from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from ttscale.datasets import (
    DATASET_LOADERS,
    DEMO_PATH,
    DEMO_SEED,
    MGSM_LANGUAGES,
    SAMPLES_DIR,
    arithmetic_questions,
    load_dataset,
    write_jsonl,
)
from ttscale.grading import GRADING_RULES, is_correct
from ttscale.schemas import Question

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


@pytest.fixture
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip(f"public question sets not found at {SHARED_DATA}")
    return SHARED_DATA


# --- the public sets -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "folder", "rows", "dataset"),
    [
        ("gsm8k", "gsm8k", 1319, "gsm8k"),
        ("mgsm", "mgsm", 250 * len(MGSM_LANGUAGES), "mgsm"),
        ("math500", "math500", 500, "math500"),
        ("aime24", "aime24", 30, "aime"),
        ("amc23", "amc23", 40, "amc"),
    ],
)
def test_loader_reads_every_row(
    shared_data: Path, name: str, folder: str, rows: int, dataset: str
) -> None:
    questions = load_dataset(name, shared_data / folder)
    assert len(questions) == rows
    assert len({question.id for question in questions}) == rows
    assert {question.dataset for question in questions} == {dataset}
    assert dataset in GRADING_RULES


def test_gsm8k_gold_is_the_number_after_hashes(shared_data: Path) -> None:
    first = load_dataset("gsm8k", shared_data / "gsm8k", limit=1)[0]
    assert (first.id, first.answer, first.language) == ("gsm8k-0000", "18", "en")
    assert "####" not in first.metadata["solution"]
    with_separator = [q for q in load_dataset("gsm8k", shared_data / "gsm8k") if "," in q.answer]
    assert with_separator, "GSM8K writes some answers as 1,600"
    assert all(is_correct(q.answer.replace(",", ""), q.answer, "gsm8k") for q in with_separator)


def test_mgsm_language_filter_and_ids(shared_data: Path) -> None:
    german = load_dataset("mgsm", shared_data / "mgsm", language="de", limit=13)
    assert german[12].id == "mgsm-de-0012"
    assert {question.language for question in german} == {"de"}
    single_file = load_dataset("mgsm", shared_data / "mgsm" / "mgsm_th.tsv", limit=1)
    assert (single_file[0].id, single_file[0].language) == ("mgsm-th-0000", "th")


def test_same_question_has_the_same_id_across_languages(shared_data: Path) -> None:
    english = load_dataset("mgsm", shared_data / "mgsm", language="en")
    bengali = load_dataset("mgsm", shared_data / "mgsm", language="bn")
    assert [q.answer for q in english] == [q.answer for q in bengali]
    assert [q.id.split("-")[-1] for q in english] == [q.id.split("-")[-1] for q in bengali]


def test_contest_answers_are_text(shared_data: Path) -> None:
    amc = load_dataset("amc23", shared_data / "amc23", limit=1)[0]
    assert (amc.id, amc.answer, amc.dataset) == ("amc23-00", "27", "amc")
    aime = load_dataset("aime24", shared_data / "aime24")
    assert all(is_correct(q.answer, q.answer, "aime") for q in aime)


def test_math500_keeps_its_metadata(shared_data: Path) -> None:
    first = load_dataset("math500", shared_data / "math500", limit=1)[0]
    assert first.answer == r"\left( 3, \frac{\pi}{2} \right)"
    assert first.metadata["unique_id"] == "test/precalculus/807.json"


def test_bundled_samples_match_the_public_sets(shared_data: Path) -> None:
    assert load_dataset("questions", SAMPLES_DIR / "gsm8k-50.jsonl") == load_dataset(
        "gsm8k", shared_data / "gsm8k", limit=50
    )
    for language in MGSM_LANGUAGES:
        bundled = load_dataset("questions", SAMPLES_DIR / f"mgsm-{language}-10.jsonl")
        assert bundled == load_dataset("mgsm", shared_data / "mgsm", language=language, limit=10)


# --- the bundled data (always runs) --------------------------------------------------------------


def _bundled_files() -> list[Path]:
    return [DEMO_PATH, *sorted(SAMPLES_DIR.glob("*.jsonl"))]


def test_every_bundled_row_is_a_valid_question() -> None:
    files = _bundled_files()
    assert len(files) == 1 + 1 + len(MGSM_LANGUAGES)
    for path in files:
        for line in path.read_text(encoding="utf-8").splitlines():
            Question.model_validate(json.loads(line))


def test_bundled_ids_are_unique_and_stable() -> None:
    for path in _bundled_files():
        ids = [question.id for question in load_dataset("questions", path)]
        assert len(ids) == len(set(ids)), path
    gsm8k = load_dataset("questions", SAMPLES_DIR / "gsm8k-50.jsonl")
    assert [q.id for q in gsm8k] == [f"gsm8k-{index:04d}" for index in range(50)]


def test_demo_batch_composition() -> None:
    demo = load_dataset("questions", DEMO_PATH)
    assert len(demo) == 24
    assert Counter(question.dataset for question in demo) == {
        "arithmetic": 16,
        "gsm8k": 4,
        "mgsm": 4,
    }
    assert Counter(q.language for q in demo if q.dataset == "mgsm") == {"es": 2, "de": 2}
    assert demo[:16] == arithmetic_questions(16, seed=DEMO_SEED)


def test_arithmetic_answers_are_right() -> None:
    for question in arithmetic_questions(50, seed=1):
        *_, first, operation, second = question.question.rstrip("?").split()
        expected = int(first) + int(second) if operation == "plus" else int(first) - int(second)
        assert question.answer == str(expected)
        assert 2 <= int(first) <= 30 and 2 <= int(second) <= 30


@pytest.mark.parametrize("path", _bundled_files(), ids=lambda path: path.name)
def test_gold_answers_grade_against_themselves(path: Path) -> None:
    for question in load_dataset("questions", path):
        assert is_correct(question.answer, question.answer, question.dataset), question.id
        wrong = str(int(question.answer.replace(",", "")) + 1)
        assert not is_correct(wrong, question.answer, question.dataset), question.id


def test_gsm8k_solution_as_gold() -> None:
    question = load_dataset("questions", SAMPLES_DIR / "gsm8k-50.jsonl", limit=1)[0]
    solution = f"{question.metadata['solution']}\n#### {question.answer}"
    assert is_correct(question.answer, solution, "gsm8k")
    assert not is_correct("17", solution, "gsm8k")


def test_language_filter_and_limit_on_bundled_file() -> None:
    assert [q.id for q in load_dataset("questions", DEMO_PATH, language="de")] == [
        "mgsm-de-0033",
        "mgsm-de-0222",
    ]
    assert len(load_dataset("questions", DEMO_PATH, limit=3)) == 3


def test_write_jsonl_round_trips(tmp_path: Path) -> None:
    questions = load_dataset("questions", SAMPLES_DIR / "mgsm-bn-10.jsonl")
    out = tmp_path / "nested" / "copy.jsonl"
    write_jsonl(questions, out)
    assert load_dataset("questions", out) == questions
    assert "\\u" not in out.read_text(encoding="utf-8")


def test_unknown_dataset_is_an_error() -> None:
    with pytest.raises(ValueError, match="unknown dataset"):
        load_dataset("nope", SAMPLES_DIR)
    assert "questions" in DATASET_LOADERS


def test_bundled_data_is_small() -> None:
    data_dir = DEMO_PATH.parent
    total = sum(path.stat().st_size for path in data_dir.rglob("*") if path.is_file())
    assert total < 200_000


# --- `ttscale data convert` ----------------------------------------------------------------------


def _convert(*args: str) -> tuple[int, str]:
    """Run ``ttscale data convert ARGS``; (exit code, all output with whitespace removed).

    Rich wraps long error lines, so compare against ``_flat(expected)``.
    """
    from typer.testing import CliRunner

    from ttscale.cli import app

    result = CliRunner().invoke(app, ["data", "convert", *args])
    return result.exit_code, _flat(result.output)


def _flat(text: str) -> str:
    return "".join(text.split())


def _gsm8k_source(folder: Path, count: int = 5) -> Path:
    """A GSM8K-layout test.jsonl {question, answer: 'solution\\n#### n'} built from the sample."""
    folder.mkdir(parents=True, exist_ok=True)
    rows = load_dataset("questions", SAMPLES_DIR / "gsm8k-50.jsonl", limit=count)
    with (folder / "test.jsonl").open("w", encoding="utf-8") as out:
        for q in rows:
            answer = f"{q.metadata['solution']}\n#### {q.answer}"
            out.write(json.dumps({"question": q.question, "answer": answer}) + "\n")
    return folder


def _mgsm_folder(folder: Path, languages: tuple[str, ...]) -> Path:
    """An MGSM folder with mgsm_<lang>.tsv for ``languages`` only, built from the samples."""
    folder.mkdir(parents=True, exist_ok=True)
    for language in languages:
        rows = load_dataset("questions", SAMPLES_DIR / f"mgsm-{language}-10.jsonl")
        (folder / f"mgsm_{language}.tsv").write_text(
            "".join(f"{q.question}\t{q.answer}\n" for q in rows), encoding="utf-8"
        )
    return folder


def test_convert_bundled_sample_round_trips(tmp_path: Path) -> None:
    out = tmp_path / "out" / "gsm8k-5.jsonl"
    code, output = _convert(
        "questions", str(SAMPLES_DIR / "gsm8k-50.jsonl"), str(out), "--limit", "5"
    )
    assert code == 0, output
    assert _flat(f"5 questions → {out}") in output
    rows = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert [row["id"] for row in rows] == [f"gsm8k-{index:04d}" for index in range(5)]
    assert load_dataset("questions", out) == load_dataset(
        "questions", SAMPLES_DIR / "gsm8k-50.jsonl", limit=5
    )


def test_convert_gsm8k_and_mgsm_sources(tmp_path: Path) -> None:
    gsm8k = _gsm8k_source(tmp_path / "gsm8k")
    code, output = _convert("gsm8k", str(gsm8k), str(tmp_path / "g.jsonl"))
    assert code == 0, output
    assert load_dataset("questions", tmp_path / "g.jsonl") == load_dataset(
        "questions", SAMPLES_DIR / "gsm8k-50.jsonl", limit=5
    )
    mgsm = _mgsm_folder(tmp_path / "mgsm", ("de", "en"))
    code, output = _convert("mgsm", str(mgsm), str(tmp_path / "de.jsonl"), "--language", "de")
    assert code == 0, output
    assert load_dataset("questions", tmp_path / "de.jsonl") == load_dataset(
        "questions", SAMPLES_DIR / "mgsm-de-10.jsonl"
    )


def test_convert_accepts_bom_and_crlf(tmp_path: Path) -> None:
    gsm8k = _gsm8k_source(tmp_path / "gsm8k", count=3)
    text = (gsm8k / "test.jsonl").read_text(encoding="utf-8")
    (gsm8k / "test.jsonl").write_bytes(b"\xef\xbb\xbf" + text.replace("\n", "\r\n").encode())
    questions = load_dataset("gsm8k", gsm8k)
    assert [q.id for q in questions] == ["gsm8k-0000", "gsm8k-0001", "gsm8k-0002"]
    assert not any(q.answer.endswith("\r") for q in questions)


def test_convert_missing_source_exits_3(tmp_path: Path) -> None:
    missing = tmp_path / "nope"
    code, output = _convert("gsm8k", str(missing), str(tmp_path / "out.jsonl"))
    assert code == 3 and _flat(f"no such source: {missing}") in output
    assert "Traceback" not in output
    (tmp_path / "empty-folder").mkdir()
    code, output = _convert("gsm8k", str(tmp_path / "empty-folder"), str(tmp_path / "out.jsonl"))
    assert (
        code == 3 and _flat(f"no such source: {tmp_path / 'empty-folder' / 'test.jsonl'}") in output
    )
    assert not (tmp_path / "out.jsonl").exists()


def test_convert_gsm8k_row_without_hashes_names_file_and_line(tmp_path: Path) -> None:
    gsm8k = _gsm8k_source(tmp_path / "gsm8k", count=4)
    lines = (gsm8k / "test.jsonl").read_text(encoding="utf-8").splitlines()
    row = json.loads(lines[2])
    row["answer"] = row["answer"].replace("####", "answer:")
    lines[2] = json.dumps(row)
    (gsm8k / "test.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    code, output = _convert("gsm8k", str(gsm8k), str(tmp_path / "out.jsonl"))
    assert code == 3, output
    assert _flat(f"{gsm8k / 'test.jsonl'}:3: GSM8K answer has no '#### <number>' line") in output
    assert not (tmp_path / "out.jsonl").exists(), "no partial set is written"


def test_convert_malformed_rows_name_file_and_line(tmp_path: Path) -> None:
    source = tmp_path / "q.jsonl"
    source.write_text('{"problem": "p", "answer": 1}\n{oops\n', encoding="utf-8")
    code, output = _convert("aime24", str(source), str(tmp_path / "out.jsonl"))
    assert code == 3 and _flat(f"{source}:2: not JSON") in output
    source.write_text('{"problem": "p", "answer": 1}\n{"answer": 2}\n', encoding="utf-8")
    code, output = _convert("aime24", str(source), str(tmp_path / "out.jsonl"))
    assert code == 3 and _flat(f"{source}:2: no 'problem' field") in output
    source.write_bytes(b'{"problem": "p", "answer": 1}\n{"problem": "\xff", "answer": 2}\n')
    code, output = _convert("aime24", str(source), str(tmp_path / "out.jsonl"))
    assert code == 3 and _flat(f"{source}:2: not valid UTF-8") in output
    tsv = tmp_path / "mgsm_de.tsv"
    tsv.write_text("Frage\t1\nkein Tab\n", encoding="utf-8")
    code, output = _convert("mgsm", str(tsv), str(tmp_path / "out.jsonl"))
    assert code == 3 and _flat(f"{tsv}:2: expected question<TAB>answer") in output


def test_convert_mgsm_missing_languages_exits_3(tmp_path: Path) -> None:
    mgsm = _mgsm_folder(tmp_path / "mgsm", ("de", "en"))
    code, output = _convert("mgsm", str(mgsm), str(tmp_path / "fr.jsonl"), "--language", "fr")
    assert (
        code == 3 and _flat("lacks the languages fr (no mgsm_<lang>.tsv); it has de, en") in output
    )
    code, output = _convert("mgsm", str(mgsm), str(tmp_path / "all.jsonl"))
    missing = ", ".join(lang for lang in MGSM_LANGUAGES if lang not in ("de", "en"))
    assert code == 3 and _flat(f"lacks the languages {missing}") in output
    assert not (tmp_path / "all.jsonl").exists()
    code, output = _convert("mgsm", str(mgsm), str(tmp_path / "xx.jsonl"), "--language", "xx")
    assert code == 2 and _flat("unknown MGSM language 'xx'") in output


def test_convert_option_errors_exit_2(tmp_path: Path) -> None:
    sample = str(SAMPLES_DIR / "gsm8k-50.jsonl")
    code, output = _convert("nope", sample, str(tmp_path / "out.jsonl"))
    assert code == 2 and _flat("unknown set 'nope'") in output
    code, output = _convert("gsm8k", sample, str(tmp_path / "out.jsonl"), "--language", "de")
    assert code == 2 and _flat("--language applies to mgsm and questions") in output
    code, _ = _convert("questions", sample, str(tmp_path / "out.jsonl"), "--limit", "0")
    assert code == 2


def test_convert_with_no_matching_questions_exits_3(tmp_path: Path) -> None:
    sample = str(SAMPLES_DIR / "gsm8k-50.jsonl")
    code, output = _convert("questions", sample, str(tmp_path / "out.jsonl"), "--language", "de")
    assert code == 3 and _flat("no questions in language 'de'") in output
    assert not (tmp_path / "out.jsonl").exists()


def test_convert_unwritable_output_exits_4(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    sample = str(SAMPLES_DIR / "gsm8k-50.jsonl")
    code, output = _convert("questions", sample, str(tmp_path / "file" / "out.jsonl"))
    assert code == 4 and _flat("cannot write") in output
