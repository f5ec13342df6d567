"""`ttscale compare` on real runs: two scripted batches through ``run_batch`` into one ledger,
then the command in a subprocess; and a crosslingual pair (language-forcing variants)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from service_helpers import question_lines

from ttscale.reports.compare_render import recommendation_cell
from ttscale.reports.headline import SliceHeadline
from ttscale.schemas import BatchRequest
from ttscale.service import resolve_run, run_batch

REPO = Path(__file__).resolve().parents[2]


def _batch(tmp_path: Path, run_id: str, lines: list[str], **fields: Any) -> dict[str, Any]:
    source = tmp_path / f"{run_id}.jsonl"
    source.write_text("".join(line + "\n" for line in lines))
    request = BatchRequest.model_validate(
        {
            "input_uri": str(source),
            "output_uri": f"file://{tmp_path}/out",
            "ledger_path": str(tmp_path / "ledger.duckdb"),
            "run_id": run_id,
            "seed": 3,
        }
        | fields
    )
    return run_batch(resolve_run(request))


def _compare(*args: str) -> subprocess.CompletedProcess[str]:
    env = os.environ | {"PYTHONPATH": str(REPO)}
    return subprocess.run(
        [sys.executable, "-m", "ttscale.cli", "compare", *args],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
        cwd=REPO,
    )


def _own_headline(result: dict[str, Any], dataset: str, language: str) -> SliceHeadline:
    """The run's own published report, read back: its marginal-gain recommendation as a headline."""
    from ttscale.reports.headline import slice_headlines
    from ttscale.reports.model import Report

    path = Path(result["report"]["json"].removeprefix("file://"))
    report = Report.model_validate_json(path.read_text())
    return next(
        h for h in slice_headlines(report) if (h.dataset, h.language) == (dataset, language)
    )


def test_two_runs_overlaid_and_side_by_side(tmp_path: Path) -> None:
    lines = question_lines(40, seed=5)
    strategies = [
        {"kind": "majority", "n": [1, 3, 5]},
        {"kind": "budget_forcing", "budgets_tokens": [8, 32]},
    ]
    weak = _batch(tmp_path, "weak", lines, engine={"kind": "scripted", "accuracy": 0.35},
                  strategies=strategies)  # fmt: skip
    strong = _batch(tmp_path, "strong", lines, engine={"kind": "scripted", "accuracy": 0.8},
                    strategies=strategies[:1])  # fmt: skip
    ledger = str(tmp_path / "ledger.duckdb")

    done = _compare("weak", "strong", "--ledger", ledger)
    assert done.returncode == 0, done.stderr
    comparison = json.loads(
        Path(done.stdout.split("comparison (json): file://")[1].split()[0]).read_text()
    )
    folder = tmp_path / "out" / "compare" / comparison["compare_id"]
    for name in ("compare.json", "compare.md", "compare.html"):
        assert (folder / name).stat().st_size > 0
    html = (folder / "compare.html").read_text()
    for label in ("weak · majority", "weak · budget_forcing", "strong · majority"):
        assert f'class="legend">{label}</text>' in html
    assert html.count('class="point"') >= 3 + 2 + 3  # every point of both runs' curves

    # The side-by-side cells are each run's own report's recommendation, figure for figure.
    assert [r["run_id"] for r in comparison["runs"]] == ["weak", "strong"]
    markdown = (folder / "compare.md").read_text()
    recommended = 0
    for row in comparison["side_by_side"]:
        for result, cell in zip((weak, strong), row["cells"], strict=True):
            own = _own_headline(result, row["dataset"], row["language"])
            shown = SliceHeadline.model_validate(cell)
            assert (shown.strategy, shown.budget, shown.accuracy) == (
                own.strategy, own.budget, own.accuracy,
            )  # fmt: skip
            assert (shown.tokens_per_item, shown.accuracy_low, shown.accuracy_high) == (
                own.tokens_per_item, own.accuracy_low, own.accuracy_high,
            )  # fmt: skip
            assert recommendation_cell(own) in markdown and recommendation_cell(own) in done.stdout
            recommended += own.strategy is not None
    assert recommended >= 1, "at least one run recommends something to compare"

    unknown = _compare("weak", "no-such-run", "--ledger", ledger)
    assert unknown.returncode == 2
    (line,) = unknown.stderr.strip().splitlines()
    assert "no-such-run" in line


def test_crosslingual_runs_get_a_row_per_language_with_the_gap_to_english(tmp_path: Path) -> None:
    lines = []
    for language in ("en", "de", "sw"):
        for k, line in enumerate(question_lines(8, seed=len(language) + ord(language[0]))):
            row = json.loads(line) | {"id": f"{language}-{k}", "language": language}
            lines.append(json.dumps(row | {"dataset": "mgsm"}))
    variants = {"plain": "none", "forced": "wait"}
    for run_id, forcing in variants.items():
        _batch(
            tmp_path, run_id, lines,
            engine={"kind": "scripted", "accuracy": 0.6},
            strategies=[{"kind": "budget_forcing", "budgets_tokens": [8, 32], "extensions": 1,
                         "language_forcing": forcing}],
        )  # fmt: skip
    out = tmp_path / "elsewhere"
    done = _compare(
        *variants, "--ledger", str(tmp_path / "ledger.duckdb"), "--output", f"file://{out}"
    )
    assert done.returncode == 0, done.stderr
    (folder,) = (out / "compare").iterdir()
    comparison = json.loads((folder / "compare.json").read_text())
    (table,) = comparison["crosslingual"]
    assert table["dataset"] == "mgsm" and table["has_reference"]
    assert [row["language"] for row in table["rows"]] == ["en", "de", "sw"]
    assert [(v["run_id"], v["budget"]) for v in table["variants"]] == [
        ("forced", 8), ("forced", 32), ("plain", 8), ("plain", 32),
    ]  # fmt: skip
    english = table["rows"][0]["cells"]
    for row in table["rows"][1:]:
        for cell, reference in zip(row["cells"], english, strict=True):
            expected = 100 * (cell["accuracy"] - reference["accuracy"])
            assert abs(cell["gap_to_reference"] - expected) < 1e-9
    markdown = (folder / "compare.md").read_text()
    assert "## Languages: mgsm" in markdown and "gap to en" in markdown
    assert "| de | 8 |" in markdown and " pts)" in markdown
