"""The CLI's success paths after a run: report, runs, runs show, sql, replay, and the demo's entry.

One small batch on the scripted engine (majority with N=4 on 3 questions) runs once through
``ttscale run`` in a subprocess; the ledger-reading commands then run on it through Typer's
CliRunner. The demo's ``main`` runs on a 3-question scripted copy of ``demo_request()``. A unit
test of the commands' plumbing, not a reported figure. (``data convert`` and ``models prepare``
are covered in tests/test_datasets.py and tests/test_model_prep.py.)
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from ttscale.cli import app

REPO = Path(__file__).resolve().parents[1]
DEMO = REPO / "ttscale" / "data" / "demo.jsonl"
REPORT_FILES = ("policy.json", "report.html", "report.json", "report.md")

runner = CliRunner()


def _env() -> dict[str, str]:
    """The environment of a subprocess. ``ttscale run`` needs no Prefect API: it runs the
    service in-process."""
    return os.environ | {"AWS_EC2_METADATA_DISABLED": "true"}


@dataclass(frozen=True)
class Finished:
    run_id: str
    ledger: Path
    output: Path


@pytest.fixture(scope="module")
def finished(tmp_path_factory: pytest.TempPathFactory) -> Finished:
    """A finished run of 3 questions × majority N=4 on the scripted engine, via ``ttscale run``."""
    root = tmp_path_factory.mktemp("cli-paths")
    output = root / "out"
    config = root / "req.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "input_uri": str(DEMO),
                "output_uri": f"file://{output}",
                "ledger_path": str(output / "ledger.duckdb"),
                "engine": {"kind": "scripted", "accuracy": 0.7},
                "strategies": {"majority": {"n": [4]}, "budget_forcing": None},
                "max_items": 3,
                "run_id": "cli-paths-run",
            }
        )
    )
    result = subprocess.run(
        [sys.executable, "-m", "ttscale.cli", "run", "--config", str(config)],
        cwd=root,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return Finished("cli-paths-run", output / "ledger.duckdb", output)


def _ok(args: list[str]) -> str:
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    return result.stdout


def _report_json(folder: Path) -> dict:
    assert sorted(p.name for p in folder.iterdir()) == list(REPORT_FILES)
    assert all((folder / name).stat().st_size > 0 for name in REPORT_FILES)
    return json.loads((folder / "report.json").read_text())


def test_report_regenerates_into_the_runs_output_and_elsewhere(
    finished: Finished, tmp_path: Path
) -> None:
    own = finished.output / "runs" / finished.run_id / "report"
    for path in own.iterdir():  # the batch wrote these: remove them, so the command must
        path.unlink()
    out = _ok(["report", finished.run_id, "--ledger", str(finished.ledger)])
    assert _report_json(own)["run"]["run_id"] == finished.run_id
    assert f"report (json): file://{own / 'report.json'}" in out

    elsewhere = tmp_path / "reports"
    out = _ok(
        [
            "report",
            finished.run_id,
            "--ledger",
            str(finished.ledger),
            "--out",
            f"file://{elsewhere}",
        ]
    )
    target = elsewhere / "runs" / finished.run_id / "report"
    assert _report_json(target)["run"]["run_id"] == finished.run_id
    assert {line.split(": ", 1)[0] for line in out.splitlines()} == {
        "report (json)", "report (markdown)", "report (html)", "report (policy)",
    }  # fmt: skip


def test_runs_lists_and_shows_the_run(finished: Finished) -> None:
    listed = _ok(["runs", "--ledger", str(finished.ledger)])
    assert finished.run_id in listed and "completed" in listed

    shown = _ok(["runs", "show", finished.run_id, "--ledger", str(finished.ledger)])
    fields = dict(line.split(": ", 1) for line in shown.splitlines() if ": " in line)
    assert fields["run_id"] == finished.run_id and fields["status"] == "completed"
    assert json.loads(fields["request"])["run_id"] == finished.run_id
    assert json.loads(fields["versions"]) is not None
    # The per strategy × budget table: majority at N=4 over 3 items.
    cells = [[c.strip() for c in line.split("│")[1:-1]] for line in shown.splitlines()]
    assert any(row[2:5] == ["majority", "4", "3"] for row in cells), shown

    missing = runner.invoke(app, ["runs", "show", "no-such-run", "--ledger", str(finished.ledger)])
    assert missing.exit_code == 2


def test_sql_on_the_run(finished: Finished) -> None:
    query = (
        "SELECT strategy, budget, count(*) AS items, sum(samples_used) AS samples "
        f"FROM item_decisions WHERE run_id = '{finished.run_id}' GROUP BY ALL"
    )
    rows = json.loads(_ok(["sql", query, "--ledger", str(finished.ledger), "--format", "json"]))
    assert rows == [{"strategy": "majority", "budget": 4, "items": 3, "samples": 12}]


def test_replay_esc_on_the_majority_pool(finished: Finished) -> None:
    out = _ok(
        [
            "replay", finished.run_id, "--ledger", str(finished.ledger),
            "--strategy", "esc:n=2,window=2",
        ]
    )  # fmt: skip
    rows = [[c.strip() for c in line.split("│")[1:-1]] for line in out.splitlines()]
    (row,) = [r for r in rows if r[:3] == ["esc", "2", "3"]]
    assert 0 <= float(row[3]) <= 1  # accuracy
    assert 1 <= float(row[5]) <= 2  # samples used per item, at most the budget


DEMO_SCRIPT = textwrap.dedent(
    """
    import sys
    from ttscale.demo import demo_request, main
    from ttscale.schemas import BatchRequest

    out = sys.argv[1]
    request = demo_request().model_dump() | {
        "engine": {"kind": "scripted", "accuracy": 0.7},
        "max_items": 3,
        "output_uri": f"file://{out}",
        "ledger_path": f"{out}/ledger.duckdb",
    }
    main(BatchRequest.model_validate(request))
    """
)


def test_demo_entry_point_on_a_tiny_input(tmp_path: Path) -> None:
    out = tmp_path / "demo-out"
    result = subprocess.run(
        [sys.executable, "-c", DEMO_SCRIPT, str(out)],
        cwd=tmp_path,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    text = result.stdout + result.stderr
    assert result.returncode == 0, text
    assert "Traceback" not in text
    lines = result.stdout.splitlines()
    assert len(lines) < 60, text
    assert any(line.startswith("Results: accuracy with 95% bootstrap CI") for line in lines)
    assert any(line.startswith("Recommended cutoffs") for line in lines)
    # demo_request's strategies: majority N ∈ {1, 2, 4, 8}, the recommended adaptive default
    # (adaptive_consistency, N_max 8) and budget forcing B ∈ {32, 64, 128}.
    for strategy, budget in [("majority", 8), ("adaptive_consistency", 8), ("budget_forcing", 128)]:
        assert any(line.split()[:2] == [strategy, str(budget)] for line in lines), text
    assert any(line.startswith("demo finished in ") for line in lines), text
    ledger = f"{out}/ledger.duckdb"
    assert f"  .venv/bin/ttscale runs --ledger {ledger}" in lines
    (hint,) = [
        line for line in lines if line.startswith(f"  .venv/bin/ttscale sql --ledger {ledger}")
    ]
    run_id = hint.split("WHERE run_id = '", 1)[1].split("'", 1)[0]
    assert (out / "runs" / run_id / "report" / "report.json").is_file()
    # The hint's query runs as printed.
    query = hint.split(f"--ledger {ledger} ", 1)[1]
    rows = json.loads(_ok(["sql", json.loads(query), "--ledger", ledger, "--format", "json"]))
    assert {(r["strategy"], r["budget"]) for r in rows} == {
        ("majority", 1), ("majority", 2), ("majority", 4), ("majority", 8),
        ("adaptive_consistency", 8), ("budget_forcing", 32), ("budget_forcing", 64), ("budget_forcing", 128),
    }  # fmt: skip
    assert all(r["items"] == 3 for r in rows)
