"""`ttscale data convert`: sources to ttscale JSONL, and its errors (file, line, exit code)."""

from __future__ import annotations

import json
from pathlib import Path

from ttscale.datasets import (
    MGSM_LANGUAGES,
    SAMPLES_DIR,
    load_dataset,
)


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
