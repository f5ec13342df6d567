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
# The first 5 rows of every public set in its source layout (tests/data/public/ATTRIBUTION.md).
PUBLIC = Path(__file__).resolve().parent / "data" / "public"
SLICE_ROWS = 5


@pytest.fixture
def full_sets() -> Path:
    """The full public sets, where this checkout has them (not in a user's clone)."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"full public question sets not found at {SHARED_DATA}")
    return SHARED_DATA


def _source_rows(path: Path) -> list[dict]:
    """The raw JSONL rows of a source file, read without ttscale."""
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def _source_tsv(path: Path) -> list[tuple[str, str]]:
    """(question, answer) of each raw MGSM TSV row, read without ttscale."""
    lines = path.read_text(encoding="utf-8").splitlines()
    return [tuple(line.split("\t")) for line in lines]  # type: ignore[misc]


# --- the public sets (the committed slices: runs in every clone) ----------------------------------


@pytest.mark.parametrize(
    ("name", "folder", "rows", "dataset"),
    [
        ("gsm8k", "gsm8k", SLICE_ROWS, "gsm8k"),
        ("mgsm", "mgsm", SLICE_ROWS * len(MGSM_LANGUAGES), "mgsm"),
        ("math500", "math500", SLICE_ROWS, "math500"),
        ("aime24", "aime24", SLICE_ROWS, "aime"),
        ("amc23", "amc23", SLICE_ROWS, "amc"),
    ],
)
def test_loader_reads_every_row(name: str, folder: str, rows: int, dataset: str) -> None:
    questions = load_dataset(name, PUBLIC / folder)
    assert len(questions) == rows
    assert len({question.id for question in questions}) == rows
    assert {question.dataset for question in questions} == {dataset}
    assert dataset in GRADING_RULES


@pytest.mark.parametrize(
    ("name", "folder", "rows"),
    [
        ("gsm8k", "gsm8k", 1319),
        ("mgsm", "mgsm", 250 * len(MGSM_LANGUAGES)),
        ("math500", "math500", 500),
        ("aime24", "aime24", 30),
        ("amc23", "amc23", 40),
    ],
)
def test_loader_reads_every_row_of_the_full_sets(
    full_sets: Path, name: str, folder: str, rows: int
) -> None:
    questions = load_dataset(name, full_sets / folder)
    assert len(questions) == len({question.id for question in questions}) == rows
    # The committed slice is the head of the full set.
    assert questions[:SLICE_ROWS] == load_dataset(name, PUBLIC / folder)[:SLICE_ROWS]


def test_gsm8k_gold_is_the_number_after_hashes() -> None:
    questions = load_dataset("gsm8k", PUBLIC / "gsm8k")
    first = questions[0]
    assert (first.id, first.answer, first.language) == ("gsm8k-0000", "18", "en")
    assert "####" not in first.metadata["solution"]
    # The gold of every row, by hand from the source: the text after "#### ".
    source = _source_rows(PUBLIC / "gsm8k" / "test.jsonl")
    golds = [row["answer"].rsplit("#### ", 1)[1].strip() for row in source]
    assert [q.answer for q in questions] == golds == ["18", "3", "70000", "540", "20"]
    assert [q.question for q in questions] == [row["question"] for row in source]
    for question, row in zip(questions, source, strict=True):
        assert is_correct(question.answer, row["answer"], "gsm8k")  # the whole source solution
        assert not is_correct(str(int(question.answer) + 1), row["answer"], "gsm8k")


def test_gsm8k_answers_with_a_thousands_separator(tmp_path: Path) -> None:
    # GSM8K writes some answers as 1,600 (not among the first 5 rows): a one-row source.
    source = tmp_path / "gsm8k"
    source.mkdir()
    solution = "He pays 2 * 800 = <<2*800=1600>>1600 dollars.\n#### 1,600"
    (source / "test.jsonl").write_text(
        json.dumps({"question": "How much?", "answer": solution}) + "\n", encoding="utf-8"
    )
    (question,) = load_dataset("gsm8k", source)
    assert question.answer == "1,600"
    assert is_correct("1600", question.answer, "gsm8k")
    assert is_correct("1600", solution, "gsm8k")
    assert not is_correct("1601", solution, "gsm8k")


def test_mgsm_language_filter_and_ids() -> None:
    german = load_dataset("mgsm", PUBLIC / "mgsm", language="de", limit=4)
    assert [q.id for q in german] == [f"mgsm-de-{i:04d}" for i in range(4)]
    assert {question.language for question in german} == {"de"}
    single_file = load_dataset("mgsm", PUBLIC / "mgsm" / "mgsm_th.tsv", limit=1)
    assert (single_file[0].id, single_file[0].language) == ("mgsm-th-0000", "th")
    source = _source_tsv(PUBLIC / "mgsm" / "mgsm_de.tsv")
    assert [(q.question, q.answer) for q in german] == source[:4]


def test_same_question_has_the_same_id_across_languages() -> None:
    english = load_dataset("mgsm", PUBLIC / "mgsm", language="en")
    bengali = load_dataset("mgsm", PUBLIC / "mgsm", language="bn")
    # MGSM translates the same questions: the source golds agree row by row.
    golds = [answer for _, answer in _source_tsv(PUBLIC / "mgsm" / "mgsm_en.tsv")]
    assert golds == [answer for _, answer in _source_tsv(PUBLIC / "mgsm" / "mgsm_bn.tsv")]
    assert [q.answer for q in english] == [q.answer for q in bengali] == golds
    assert [q.id.split("-")[-1] for q in english] == [q.id.split("-")[-1] for q in bengali]


def test_contest_answers_are_text() -> None:
    amc = load_dataset("amc23", PUBLIC / "amc23")
    assert (amc[0].id, amc[0].answer, amc[0].dataset) == ("amc23-00", "27", "amc")
    # The sources store AMC golds as floats (27.0) and AIME golds as strings ("204").
    amc_source = [row["answer"] for row in _source_rows(PUBLIC / "amc23" / "test.jsonl")]
    assert amc_source == [27.0, 36.0, 45.0, 3159.0, 36.0]
    assert [q.answer for q in amc] == ["27", "36", "45", "3159", "36"]
    aime = load_dataset("aime24", PUBLIC / "aime24")
    aime_source = [row["answer"] for row in _source_rows(PUBLIC / "aime24" / "test.jsonl")]
    assert [q.answer for q in aime] == aime_source == ["204", "113", "371", "385", "110"]
    for questions, golds, dataset in ((amc, amc_source, "amc"), (aime, aime_source, "aime")):
        for question, gold in zip(questions, golds, strict=True):
            assert is_correct(question.answer, str(gold), dataset), question.id
            assert not is_correct(str(int(float(gold)) + 1), question.answer, dataset)


def test_math500_keeps_its_metadata() -> None:
    questions = load_dataset("math500", PUBLIC / "math500")
    first = questions[0]
    assert first.answer == r"\left( 3, \frac{\pi}{2} \right)"
    assert first.metadata["unique_id"] == "test/precalculus/807.json"
    source = _source_rows(PUBLIC / "math500" / "test.jsonl")
    assert [q.answer for q in questions] == [row["answer"] for row in source]
    assert [q.metadata["unique_id"] for q in questions] == [row["unique_id"] for row in source]


def test_bundled_samples_match_the_public_sets() -> None:
    # The bundled samples' first rows against the committed slices (every clone) ...
    assert load_dataset("questions", SAMPLES_DIR / "gsm8k-50.jsonl", limit=SLICE_ROWS) == (
        load_dataset("gsm8k", PUBLIC / "gsm8k")
    )
    for language in MGSM_LANGUAGES:
        bundled = load_dataset(
            "questions", SAMPLES_DIR / f"mgsm-{language}-10.jsonl", limit=SLICE_ROWS
        )
        assert bundled == load_dataset("mgsm", PUBLIC / "mgsm", language=language)


def test_bundled_samples_match_the_full_sets(full_sets: Path) -> None:
    # ... and all of them against the full sets, where present.
    assert load_dataset("questions", SAMPLES_DIR / "gsm8k-50.jsonl") == load_dataset(
        "gsm8k", full_sets / "gsm8k", limit=50
    )
    for language in MGSM_LANGUAGES:
        bundled = load_dataset("questions", SAMPLES_DIR / f"mgsm-{language}-10.jsonl")
        assert bundled == load_dataset("mgsm", full_sets / "mgsm", language=language, limit=10)


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


def _source_golds() -> dict[str, tuple[str, str]]:
    """id → (gold as the source file writes it, dataset) for every row of the committed slices."""
    golds = {
        f"gsm8k-{index:04d}": (row["answer"], "gsm8k")  # the whole solution, "#### n" last
        for index, row in enumerate(_source_rows(PUBLIC / "gsm8k" / "test.jsonl"))
    }
    for language in MGSM_LANGUAGES:
        rows = _source_tsv(PUBLIC / "mgsm" / f"mgsm_{language}.tsv")
        golds |= {
            f"mgsm-{language}-{i:04d}": (answer, "mgsm") for i, (_, answer) in enumerate(rows)
        }
    return golds


def _arithmetic_gold(question: Question) -> str:
    """The answer of "What is A plus|minus B?", by hand."""
    *_, first, operation, second = question.question.rstrip("?").split()
    return str(int(first) + int(second) if operation == "plus" else int(first) - int(second))


@pytest.mark.parametrize("path", _bundled_files(), ids=lambda path: path.name)
def test_bundled_answers_grade_against_the_source_gold(path: Path) -> None:
    source = _source_golds()
    checked = 0
    for question in load_dataset("questions", path):
        if question.dataset == "arithmetic":
            gold = _arithmetic_gold(question)
        elif question.id in source:
            gold, dataset = source[question.id]
            assert dataset == question.dataset
        else:
            continue  # a row past the committed slices (the full-set test covers it)
        checked += 1
        assert is_correct(question.answer, gold, question.dataset), question.id
        wrong = str(int(question.answer.replace(",", "")) + 1)
        assert not is_correct(wrong, gold, question.dataset), question.id
    # Every file has rows with a known source gold: 5 per sample file, 16 arithmetic in the demo.
    assert checked == (16 if path == DEMO_PATH else SLICE_ROWS)


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
