"""The recommended adaptive default: one preset, reachable from the CLI, run by the demo on
majority's samples, and marked in the report next to the fixed strategies."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from ledger_helpers import open_ledger
from pydantic import TypeAdapter

from ttscale.cli.specs import parse_strategy
from ttscale.errors import ConfigError
from ttscale.ledger.report_data import build_report_from_ledger
from ttscale.reports.html import render_html
from ttscale.reports.markdown import render_markdown
from ttscale.schemas import BatchRequest
from ttscale.strategies.config import StrategyConfig
from ttscale.strategies.defaults import RECOMMENDED_SETTINGS, recommended_adaptive, recommended_kind

MARK = "adaptive_consistency (recommended default)"


def _config(spec: str) -> object:
    return TypeAdapter(StrategyConfig).validate_python(parse_strategy(spec))


def test_the_preset_parses_from_the_cli() -> None:
    assert _config("recommended") == recommended_adaptive(8)
    wider = _config("recommended:n_max=16,max_tokens=100")
    assert wider == recommended_adaptive(16, max_tokens=100)
    assert wider.model_dump(include=set(RECOMMENDED_SETTINGS)) == RECOMMENDED_SETTINGS  # type: ignore[attr-defined]
    assert (wider.n, wider.max_tokens) == ([16], 100)  # type: ignore[attr-defined]
    # The stopping rule is the preset: changing it is another strategy, said so.
    with pytest.raises(ConfigError, match="fixes \\['threshold'\\]"):
        parse_strategy("recommended:threshold=0.9")
    with pytest.raises(ConfigError, match="one n_max"):
        parse_strategy("recommended:n_max=4,8")


def test_the_demo_runs_it_on_majoritys_samples() -> None:
    from ttscale.demo import demo_request

    request = demo_request()
    stored = request.model_dump(mode="json")
    assert recommended_kind(stored) == "adaptive_consistency"
    by_kind = {c.kind: c for c in request.strategies.configs()}
    preset, majority = by_kind["adaptive_consistency"], by_kind["majority"]
    # Same sampling settings, so the run's sample cache serves it majority's samples.
    sampling = {"temperature", "top_p", "max_tokens"}
    assert preset.model_dump(include=sampling) == majority.model_dump(include=sampling)
    assert preset.n == [max(majority.n)]


def _run(tmp_path: Path, adaptive: dict[str, object]) -> tuple[str, str, object]:
    from ttscale.service import resolve_run, run_batch

    tmp_path.mkdir()
    items = tmp_path / "items.jsonl"
    items.write_text(
        "".join(
            json.dumps({"id": f"q{i}", "question": f"What is {i} plus 2?", "answer": str(i + 2)})
            + "\n"
            for i in range(3)
        )
    )
    request = BatchRequest.model_validate(
        {
            "input_uri": str(items),
            "output_uri": f"file://{tmp_path}/out",
            "ledger_path": str(tmp_path / "ledger.duckdb"),
            "engine": {"kind": "scripted", "accuracy": 0.7},
            "strategies": [{"kind": "majority", "n": [1, 2, 4]}, adaptive],
            "run_id": "preset",
        }
    )
    result = run_batch(resolve_run(request))
    report = build_report_from_ledger(open_ledger(result["ledger"]), "preset")
    return render_markdown(report), render_html(report), report


def test_the_report_marks_the_recommended_default(tmp_path: Path) -> None:
    preset = recommended_adaptive(4).model_dump(mode="json")
    markdown, html, report = _run(tmp_path / "preset", preset)
    assert report.recommended_default == "adaptive_consistency"  # type: ignore[attr-defined]
    rows = [line for line in markdown.splitlines() if line.startswith(f"| {MARK} | 4 |")]
    assert len(rows) == 1, markdown
    assert f"<td>{MARK}</td>" in html  # the summary table
    assert f'class="legend">{MARK}</text>' in html  # the cost chart's legend names its curve
    assert "| majority (recommended default)" not in markdown
    # Adaptive-Consistency at other settings is not the preset: no mark.
    plain = {"kind": "adaptive_consistency", "n": [4], "threshold": 0.95}
    markdown, html, report = _run(tmp_path / "plain", plain)
    assert report.recommended_default is None  # type: ignore[attr-defined]
    assert "recommended default" not in markdown and "recommended default" not in html
