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
