"""Hostile run ids are refused before anything is written; hostile item ids are data, never paths,
SQL or markup."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from ledger_helpers import open_ledger
from pydantic import ValidationError
from typer.testing import CliRunner

from flows.batch import ttscale_batch
from ttscale.cli import app
from ttscale.schemas import RUN_ID_PATTERN, BatchRequest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "service"))
from service_helpers import UNITS_PER_ITEM, scaled, scripted_request

REPO = Path(__file__).resolve().parents[2]
PATTERN = "^[a-z0-9][a-z0-9-]{0,62}$"
assert RUN_ID_PATTERN == PATTERN

HOSTILE_RUN_IDS = [
    "../escape",
    "zz/../run-other",
    "/abs/path",
    "x y$(id)",
    "UPPER",
    "a" * 64,
]

HOSTILE_ITEM_IDS = [
    "../../etc/x",
    "a/b",
    "<script>alert(1)</script>",
    "' OR 1=1 --",
    "é漢字🙂\u202e\u200bcombined\u0301",
    "ü" * 200,
]


def _question_rows(ids: list[str]) -> list[str]:
    return [
        json.dumps({"id": item_id, "question": f"What is {i + 2} plus 3?", "answer": str(i + 5)})
        for i, item_id in enumerate(ids)
    ]


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A working directory holding only the input; the test runs in it."""
    work = tmp_path / "work"
    work.mkdir()
    (work / "q.jsonl").write_text("\n".join(_question_rows(["q1", "q2"])) + "\n")
    monkeypatch.chdir(work)
    return work


def _files(root: Path) -> set[str]:
    return {p.relative_to(root).as_posix() for p in root.rglob("*")}


def _cli_args(run_id: str) -> list[str]:
    return [
        "run",
        "--input",
        "q.jsonl",
        "--output",
        "file://out",
        "--ledger",
        "out/ledger.duckdb",
        "--majority",
        "1",
        "--run-id",
        run_id,
    ]


def _assert_nothing_written(workdir: Path) -> None:
    assert _files(workdir) == {"q.jsonl"}
    assert not (workdir / "out").exists() and not (workdir / "out" / "ledger.duckdb").exists()


@pytest.mark.parametrize("run_id", HOSTILE_RUN_IDS)
def test_cli_refuses_hostile_run_id(workdir: Path, run_id: str) -> None:
    started = time.monotonic()
    result = CliRunner().invoke(app, _cli_args(run_id))
    elapsed = time.monotonic() - started
    output = result.output + (result.stderr if result.stderr_bytes is not None else "")
    assert result.exit_code == 2, output
    assert elapsed < scaled(5)
    assert "Traceback" not in output
    assert "run_id" in output and "must match" in output, output
    _assert_nothing_written(workdir)


def test_cli_subprocess_refuses_within_5_s(workdir: Path) -> None:
    """The real command in a fresh interpreter (imports included), and a config file's run_id."""
    env = os.environ | {"AWS_EC2_METADATA_DISABLED": "true", "PYTHONPATH": str(REPO)}
    config = workdir.parent / "bad.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "input_uri": "q.jsonl",
                "output_uri": "file://out",
                "ledger_path": "out/ledger.duckdb",
                "run_id": "../escape",
                "engine": {"kind": "scripted"},
            }
        )
    )
    for args in (_cli_args("x y$(id)"), ["run", "--config", str(config)]):
        started = time.monotonic()
        result = subprocess.run(
            [sys.executable, "-m", "ttscale.cli", *args],
            cwd=workdir,
            env=env,
            capture_output=True,
            text=True,
            timeout=scaled(60),
        )
        elapsed = time.monotonic() - started
        output = result.stdout + result.stderr
        assert result.returncode == 2, output
        assert elapsed < scaled(5), f"{args}: refused after {elapsed:.1f} s"
        assert "Traceback" not in output and len(output.strip().splitlines()) == 1, output
        assert "must match" in output, output
        _assert_nothing_written(workdir)


def test_cli_refusal_shows_the_pattern(workdir: Path) -> None:
    result = CliRunner().invoke(app, _cli_args("../escape"))
    assert result.exit_code == 2
    assert PATTERN in result.output + (result.stderr if result.stderr_bytes is not None else "")


def test_cli_refuses_markup_run_id(workdir: Path) -> None:
    result = CliRunner().invoke(app, _cli_args("[/red]"))
    assert result.exit_code == 2, result.output
    _assert_nothing_written(workdir)


@pytest.mark.parametrize("run_id", HOSTILE_RUN_IDS)
def test_config_file_and_python_api_refuse_hostile_run_id(
    workdir: Path, run_id: str, tmp_path: Path
) -> None:
    data = {
        "input_uri": "q.jsonl",
        "output_uri": "file://out",
        "ledger_path": "out/ledger.duckdb",
        "engine": {"kind": "scripted"},
        "run_id": run_id,
    }
    config = tmp_path / "request.yaml"
    config.write_text(yaml.safe_dump(data))
    result = CliRunner().invoke(app, ["run", "--config", str(config)])
    assert result.exit_code == 2, result.output
    with pytest.raises(ValidationError) as refused:
        BatchRequest.model_validate(data)
    assert PATTERN in str(refused.value)
    with pytest.raises(ValidationError):
        BatchRequest.model_validate_json(json.dumps(data))
    _assert_nothing_written(workdir)


@pytest.mark.usefixtures("prefect_harness")
def test_flow_run_refuses_hostile_run_id(workdir: Path) -> None:
    """Parameters given to the flow as data are validated as a BatchRequest before it runs."""
    for run_id in ("../escape", "x y$(id)"):
        with pytest.raises(Exception, match="must match") as refused:
            ttscale_batch(  # type: ignore[call-overload]
                {
                    "input_uri": str(workdir / "q.jsonl"),
                    "output_uri": f"file://{workdir}/out",
                    "ledger_path": str(workdir / "out" / "ledger.duckdb"),
                    "engine": {"kind": "scripted"},
                    "strategies": [{"kind": "majority", "n": [1]}],
                    "run_id": run_id,
                }
            )
        assert PATTERN in str(refused.value)
        _assert_nothing_written(workdir)


def test_flow_run_refuses_unvalidated_instance(workdir: Path) -> None:
    request = scripted_request(
        str(workdir / "q.jsonl"), f"file://{workdir}/out", workdir / "out" / "ledger.duckdb"
    ).model_copy(update={"run_id": "x y$(id)"})
    with pytest.raises(Exception, match="must match"):
        ttscale_batch(request)
    _assert_nothing_written(workdir)


@pytest.mark.usefixtures("prefect_harness")
def test_hostile_item_ids_are_data(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Stored exactly, never used as paths, escaped in the HTML report."""
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    sandbox = tmp_path / "sandbox"
    out = sandbox / "a" / "b" / "out"  # deep enough that ../../etc/x would still be in tmp_path
    out.mkdir(parents=True)
    questions = sandbox / "in.jsonl"
    # The language field reaches the HTML report's slice headings: markup there too.
    rows = [json.loads(r) for r in _question_rows(HOSTILE_ITEM_IDS)]
    rows[2]["language"] = "<script>alert('lang')</script>"
    questions.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
    before = _files(tmp_path)

    result = ttscale_batch(
        scripted_request(str(questions), out.as_uri(), out / "ledger.duckdb", shard_size=4)
    )

    run_id = result["run_id"]
    assert result["items"] == len(HOSTILE_ITEM_IDS) and result["bad_rows"] == 0
    created = _files(tmp_path) - before
    outside = sorted(p for p in created if not p.startswith("sandbox/a/b/out/"))
    assert outside == [], outside
    assert not any((d / "etc").exists() for d in (cwd, sandbox, sandbox / "a", tmp_path))
    assert _files(cwd) == set()

    con = open_ledger(str(out / "ledger.duckdb"))
    try:
        items = con.execute("SELECT item_id FROM items WHERE run_id = ?", [run_id]).fetchall()
        units = con.execute(
            "SELECT item_id, count(*) FROM item_decisions WHERE run_id = ? GROUP BY 1", [run_id]
        ).fetchall()
        calls = con.execute(
            "SELECT count(DISTINCT item_id) FROM generation_calls WHERE run_id = ?", [run_id]
        ).fetchone()
    finally:
        con.close()
    assert sorted(i for (i,) in items) == sorted(HOSTILE_ITEM_IDS)
    assert dict(units) == dict.fromkeys(HOSTILE_ITEM_IDS, UNITS_PER_ITEM)
    assert calls == (len(HOSTILE_ITEM_IDS),)

    html = (out / "runs" / run_id / "report" / "report.html").read_text(encoding="utf-8")
    body = html.split("<body>", 1)[1].rsplit("<script>", 1)[0]  # the report's own script is last
    assert "<script" not in body.lower()
    assert "&lt;script&gt;alert(&#x27;lang&#x27;)&lt;/script&gt;" in body
    assert html.lower().count("<script") == 1
