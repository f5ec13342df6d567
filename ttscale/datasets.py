"""Loaders that turn the public question sets into `Question` rows, and the bundled samples.

Ids are ``<set>[-<language>]-<row>``, the row counted from 0 in the source file, so the same
question keeps its id in every copy (``gsm8k-0007``, ``mgsm-de-0012``, ``aime24-03``).

A source that is missing or malformed raises ``InputError`` naming the file and line (a UTF-8 byte
order mark and CRLF line ends are accepted); a row without a gold answer is an error, not skipped,
so a converted set is always the whole set.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from ttscale.errors import ConfigError, InputError, StorageError
from ttscale.schemas import Question

MGSM_LANGUAGES = ("bn", "de", "en", "es", "fr", "ja", "ru", "sw", "te", "th", "zh")

BUNDLED_DATA = Path(__file__).resolve().parent / "data"
DEMO_PATH = BUNDLED_DATA / "demo.jsonl"
SAMPLES_DIR = BUNDLED_DATA / "samples"

DEMO_SEED = 20250101
"""Seed of the arithmetic questions in the demo batch (see `arithmetic_questions`)."""


def _lines(path: Path) -> Iterator[tuple[int, str]]:
    """(1-based line number, text) of every non-blank line; a BOM and CRLF line ends are fine."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise InputError(f"no such source: {path}") from None
    except IsADirectoryError:
        raise InputError(f"{path} is a folder, expected a file") from None
    except OSError as error:
        raise InputError(f"cannot read {path}: {error.strerror or error}") from None
    for line_number, raw in enumerate(data.split(b"\n"), start=1):
        try:
            text = raw.removesuffix(b"\r").decode("utf-8").removeprefix("\ufeff")
        except UnicodeDecodeError as error:
            raise InputError(
                f"{path}:{line_number}: not valid UTF-8 ({error.reason} at column {error.start + 1})"
            ) from None
        if text.strip():
            yield line_number, text


def _json_rows(path: Path) -> Iterator[tuple[int, int, dict[str, Any]]]:
    """(row index, line number, object) for every non-blank line of a JSONL file."""
    for index, (line_number, line) in enumerate(_lines(path)):
        try:
            row = json.loads(line)
        except json.JSONDecodeError as error:
            raise InputError(f"{path}:{line_number}: not JSON: {error.msg}") from None
        if not isinstance(row, dict):
            raise InputError(f"{path}:{line_number}: not a JSON object")
        yield index, line_number, row


@contextmanager
def _row_errors(path: Path, line_number: int) -> Iterator[None]:
    """Report a missing field or an invalid value inside the block as ``path:line``."""
    try:
        yield
    except KeyError as error:
        raise InputError(f"{path}:{line_number}: no {error.args[0]!r} field") from None
    except ValidationError as error:
        first = error.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "row"
        raise InputError(f"{path}:{line_number}: {where}: {first['msg']}") from None


def _file_in(path: Path, file_name: str) -> Path:
    """The set's file: ``path`` itself, or ``file_name`` inside the folder ``path``."""
    return path / file_name if path.is_dir() else path


def _number_text(value: Any) -> str:
    # AMC answers are stored as floats ("27.0"); the integer ones read better as integers.
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def load_gsm8k(path: Path, language: str | None = None) -> Iterator[Question]:
    """GSM8K test JSONL {question, answer}; the gold answer is what follows ``####``.

    A row whose answer has no ``#### n`` line has no gold answer: InputError naming file:line.
    """
    file = _file_in(path, "test.jsonl")
    for index, line_number, row in _json_rows(file):
        with _row_errors(file, line_number):
            solution, separator, final = str(row["answer"]).rpartition("####")
            if not separator:
                raise InputError(
                    f"{file}:{line_number}: GSM8K answer has no '#### <number>' line "
                    "(is this the GSM8K test set?)"
                )
            question = Question(
                id=f"gsm8k-{index:04d}",
                question=row["question"],
                answer=final.strip(),
                language="en",
                dataset="gsm8k",
                metadata={"solution": solution.strip()},
            )
        yield question


def load_mgsm(path: Path, language: str | None = None) -> Iterator[Question]:
    """MGSM ``mgsm_<lang>.tsv`` files (question<TAB>answer, no header); every language if None.

    In a folder, every language asked for must have its file (InputError listing those missing).
    """
    if path.is_dir():
        languages = [language] if language else list(MGSM_LANGUAGES)
        files = [(lang, path / f"mgsm_{lang}.tsv") for lang in languages]
        _check_mgsm_folder(path, [lang for lang, file in files if not file.is_file()])
    else:
        files = [(language or path.stem.removeprefix("mgsm_"), path)]
    for lang, file in files:
        for line_number, line in _lines(file):
            text, separator, answer = line.rpartition("\t")
            if not separator:
                raise InputError(f"{file}:{line_number}: expected question<TAB>answer")
            with _row_errors(file, line_number):
                question = Question(
                    id=f"mgsm-{lang}-{line_number - 1:04d}",
                    question=text,
                    answer=answer,
                    language=lang,
                    dataset="mgsm",
                )
            yield question


def _check_mgsm_folder(path: Path, missing: list[str]) -> None:
    """Fail before reading anything if a language asked for has no ``mgsm_<lang>.tsv``."""
    if not missing:
        return
    unknown = [lang for lang in missing if lang not in MGSM_LANGUAGES]
    if unknown:
        raise ConfigError(
            f"unknown MGSM language {unknown[0]!r}; known: {', '.join(MGSM_LANGUAGES)}"
        )
    present = [lang for lang in MGSM_LANGUAGES if (path / f"mgsm_{lang}.tsv").is_file()]
    raise InputError(
        f"MGSM folder {path} lacks the languages {', '.join(missing)} (no mgsm_<lang>.tsv); "
        + (f"it has {', '.join(present)}" if present else "it has no mgsm_<lang>.tsv at all")
    )


def load_math500(path: Path, language: str | None = None) -> Iterator[Question]:
    """MATH-500 JSONL {problem, solution, answer, subject, level, unique_id}."""
    file = _file_in(path, "test.jsonl")
    for index, line_number, row in _json_rows(file):
        with _row_errors(file, line_number):
            question = Question(
                id=f"math500-{index:04d}",
                question=row["problem"],
                answer=row["answer"],
                language="en",
                dataset="math500",
                metadata={key: row[key] for key in ("subject", "level", "unique_id", "solution")},
            )
        yield question


def _contest_loader(set_name: str, dataset: str) -> Callable[..., Iterator[Question]]:
    def load(path: Path, language: str | None = None) -> Iterator[Question]:
        file = _file_in(path, "test.jsonl")
        for index, line_number, row in _json_rows(file):
            with _row_errors(file, line_number):
                question = Question(
                    id=f"{set_name}-{index:02d}",
                    question=row["problem"],
                    answer=_number_text(row["answer"]),
                    language="en",
                    dataset=dataset,
                    metadata={"source_id": row.get("id"), "url": row.get("url")},
                )
            yield question

    load.__doc__ = f"{set_name} JSONL {{id, problem, answer, url, ...}} (Qwen2.5-Math layout)."
    return load


def load_questions(path: Path, language: str | None = None) -> Iterator[Question]:
    """JSONL already in the `Question` layout (the bundled demo and samples); filter by language."""
    for _, line_number, row in _json_rows(path):
        with _row_errors(path, line_number):
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
    """The first ``limit`` questions (all if None) of set ``name`` read from ``path``.

    Raises ValueError for an unknown ``name``, InputError for a missing or malformed source
    (``no such source: PATH``, ``FILE:LINE: ...``), ConfigError for an unknown MGSM language.
    """
    try:
        loader = DATASET_LOADERS[name]
    except KeyError:
        raise ValueError(f"unknown dataset {name!r}; known: {sorted(DATASET_LOADERS)}") from None
    if not Path(path).exists():
        raise InputError(f"no such source: {path}")
    questions: list[Question] = []
    for question in loader(Path(path), language=language):
        if limit is not None and len(questions) >= limit:
            break
        questions.append(question)
    return questions


def write_jsonl(questions: Iterable[Question], path: Path) -> None:
    """Write questions as JSONL (UTF-8, one object a line), creating the folder if needed."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("w", encoding="utf-8") as out:
            for question in questions:
                out.write(json.dumps(question.model_dump(mode="json"), ensure_ascii=False) + "\n")
    except OSError as error:
        raise StorageError(f"cannot write {path}: {error.strerror or error}") from None


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
