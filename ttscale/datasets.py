"""Loaders that turn the public question sets into `Question` rows, and the bundled samples.

Ids are ``<set>[-<language>]-<row>``, the row counted from 0 in the source file, so the same
question keeps its id in every copy (``gsm8k-0007``, ``mgsm-de-0012``, ``aime24-03``).
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

from ttscale.schemas import Question

MGSM_LANGUAGES = ("bn", "de", "en", "es", "fr", "ja", "ru", "sw", "te", "th", "zh")

BUNDLED_DATA = Path(__file__).resolve().parent / "data"
DEMO_PATH = BUNDLED_DATA / "demo.jsonl"
SAMPLES_DIR = BUNDLED_DATA / "samples"

DEMO_SEED = 20250101
"""Seed of the arithmetic questions in the demo batch (see `arithmetic_questions`)."""


def _json_rows(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """(row index, object) for every non-blank line of a JSONL file."""
    with path.open(encoding="utf-8") as lines:
        index = 0
        for line_number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            try:
                yield index, json.loads(line)
            except json.JSONDecodeError as error:
                raise ValueError(f"{path}:{line_number}: not JSON: {error}") from error
            index += 1


def _file_in(path: Path, file_name: str) -> Path:
    """The set's file: ``path`` itself, or ``file_name`` inside the folder ``path``."""
    return path / file_name if path.is_dir() else path


def _number_text(value: Any) -> str:
    # AMC answers are stored as floats ("27.0"); the integer ones read better as integers.
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def load_gsm8k(path: Path, language: str | None = None) -> Iterator[Question]:
    """GSM8K test JSONL {question, answer}; the gold answer is what follows ``####``."""
    for index, row in _json_rows(_file_in(path, "test.jsonl")):
        solution, separator, final = row["answer"].rpartition("####")
        if not separator:
            raise ValueError(f"{path}: row {index}: the answer has no '#### n' line")
        yield Question(
            id=f"gsm8k-{index:04d}",
            question=row["question"],
            answer=final.strip(),
            language="en",
            dataset="gsm8k",
            metadata={"solution": solution.strip()},
        )


def load_mgsm(path: Path, language: str | None = None) -> Iterator[Question]:
    """MGSM ``mgsm_<lang>.tsv`` files (question<TAB>answer, no header); every language if None."""
    if path.is_dir():
        languages = [language] if language else list(MGSM_LANGUAGES)
        files = [(lang, path / f"mgsm_{lang}.tsv") for lang in languages]
    else:
        files = [(language or path.stem.removeprefix("mgsm_"), path)]
    for lang, file in files:
        with file.open(encoding="utf-8") as lines:
            for index, line in enumerate(lines):
                question, separator, answer = line.rstrip("\n").rpartition("\t")
                if not separator:
                    raise ValueError(f"{file}:{index + 1}: expected question<TAB>answer")
                yield Question(
                    id=f"mgsm-{lang}-{index:04d}",
                    question=question,
                    answer=answer,
                    language=lang,
                    dataset="mgsm",
                )


def load_math500(path: Path, language: str | None = None) -> Iterator[Question]:
    """MATH-500 JSONL {problem, solution, answer, subject, level, unique_id}."""
    for index, row in _json_rows(_file_in(path, "test.jsonl")):
        yield Question(
            id=f"math500-{index:04d}",
            question=row["problem"],
            answer=row["answer"],
            language="en",
            dataset="math500",
            metadata={key: row[key] for key in ("subject", "level", "unique_id", "solution")},
        )


def _contest_loader(set_name: str, dataset: str) -> Callable[..., Iterator[Question]]:
    def load(path: Path, language: str | None = None) -> Iterator[Question]:
        for index, row in _json_rows(_file_in(path, "test.jsonl")):
            yield Question(
                id=f"{set_name}-{index:02d}",
                question=row["problem"],
                answer=_number_text(row["answer"]),
                language="en",
                dataset=dataset,
                metadata={"source_id": row.get("id"), "url": row.get("url")},
            )

    load.__doc__ = f"{set_name} JSONL {{id, problem, answer, url, ...}} (Qwen2.5-Math layout)."
    return load


def load_questions(path: Path, language: str | None = None) -> Iterator[Question]:
    """JSONL already in the `Question` layout (the bundled demo and samples); filter by language."""
    for _, row in _json_rows(path):
        question = Question.model_validate(row)
        if language is None or question.language == language:
            yield question


DATASET_LOADERS: dict[str, Callable[..., Iterator[Question]]] = {
    "gsm8k": load_gsm8k,
    "mgsm": load_mgsm,
    "math500": load_math500,
    "aime24": _contest_loader("aime24", "aime"),
    "amc23": _contest_loader("amc23", "amc"),
    "questions": load_questions,
}
"""Loader of each set by name: ``loader(path, language=None)`` yields its questions in order."""


def load_dataset(
    name: str, path: Path, language: str | None = None, limit: int | None = None
) -> list[Question]:
    """The first ``limit`` questions (all if None) of set ``name`` read from ``path``."""
    try:
        loader = DATASET_LOADERS[name]
    except KeyError:
        raise ValueError(f"unknown dataset {name!r}; known: {sorted(DATASET_LOADERS)}") from None
    questions: list[Question] = []
    for question in loader(Path(path), language=language):
        if limit is not None and len(questions) >= limit:
            break
        questions.append(question)
    return questions


def write_jsonl(questions: Iterable[Question], path: Path) -> None:
    """Write questions as JSONL (UTF-8, one object a line), creating the folder if needed."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as out:
        for question in questions:
            out.write(json.dumps(question.model_dump(mode="json"), ensure_ascii=False) + "\n")


def arithmetic_questions(count: int = 16, seed: int = DEMO_SEED) -> list[Question]:
    """``count`` questions "What is a plus b?" / "What is a minus b?", a and b in 2..30.

    Deterministic for a seed; a minus question always has a >= b so the answer is not negative.
    """
    rng = random.Random(seed)
    questions: list[Question] = []
    for index in range(count):
        first, second = rng.randint(2, 30), rng.randint(2, 30)
        if index % 2:
            first, second = max(first, second), min(first, second)
            text, answer = f"What is {first} minus {second}?", first - second
        else:
            text, answer = f"What is {first} plus {second}?", first + second
        questions.append(
            Question(
                id=f"arithmetic-{index:04d}",
                question=text,
                answer=str(answer),
                language="en",
                dataset="arithmetic",
                metadata={"seed": seed},
            )
        )
    return questions
