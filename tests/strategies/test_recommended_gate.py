"""The recommended preset with a scorer and a calibration run: the match-majority verifier gate."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from ledger_helpers import open_ledger
from pydantic import TypeAdapter

from ttscale.cli.specs import parse_strategy
from ttscale.errors import ConfigError
from ttscale.ledger.report_data import build_report_from_ledger
from ttscale.reports.markdown import render_markdown
from ttscale.schemas import BatchRequest
from ttscale.strategies.config import StrategyConfig
from ttscale.strategies.defaults import (
    RECOMMENDED_GATE_SETTINGS,
    recommended_adaptive,
    recommended_kind,
)
from ttscale.strategies.kinds.adaptive_consistency import AdaptiveConsistencyConfig

MARK = "verifier_gate (recommended default)"


def _config(spec: str) -> Any:
    return TypeAdapter(StrategyConfig).validate_python(parse_strategy(spec))


def test_with_a_scorer_and_a_calibration_run_the_preset_is_the_gate() -> None:
    gate = _config("recommended:n_max=16,calibration_run=cal,scorer.kind=stored,max_tokens=64")
    assert gate == recommended_adaptive(
        16, scorer={"kind": "stored"}, calibration_run="cal", max_tokens=64
    )
    assert gate.model_dump(include=set(RECOMMENDED_GATE_SETTINGS)) == RECOMMENDED_GATE_SETTINGS
    assert (gate.n, gate.scorer.kind, gate.calibration_run) == ([16], "stored", "cal")
    # Without either it stays Adaptive-Consistency at 0.8.
    assert isinstance(_config("recommended"), AdaptiveConsistencyConfig)
    # One without the other is refused, by name: silently running the other preset would mislead.
    with pytest.raises(ConfigError, match="scorer is missing"):
        parse_strategy("recommended:calibration_run=cal")
    with pytest.raises(ConfigError, match="calibration_run is missing"):
        parse_strategy("recommended:scorer.kind=stored")
    with pytest.raises(ConfigError, match="fixes \\['target_margin'\\]"):
        parse_strategy("recommended:calibration_run=cal,scorer.kind=stored,target_margin=0.01")


def test_recommended_kind_names_either_preset() -> None:
    gate = recommended_adaptive(8, scorer={"kind": "mean_logprob"}, calibration_run="cal")
    stored = {"strategies": [gate.model_dump(mode="json")]}
    assert recommended_kind(stored) == "verifier_gate"
    other = gate.model_copy(update={"answer": "weighted_vote"})
    assert recommended_kind({"strategies": [other.model_dump(mode="json")]}) is None


def _request(tmp_path: Path, run_id: str, strategies: list[Any]) -> BatchRequest:
    return BatchRequest.model_validate(
        {
            "input_uri": str(tmp_path / "items.jsonl"),
            "output_uri": f"file://{tmp_path}/out-{run_id}",
            "ledger_path": str(tmp_path / "ledger.duckdb"),
            "engine": {"kind": "scripted", "accuracy": 0.7},
            "strategies": strategies,
            "run_id": run_id,
        }
    )


def test_a_run_of_the_gate_preset_is_calibrated_and_marked(tmp_path: Path) -> None:
    from ttscale.service import resolve_run, run_batch

    (tmp_path / "items.jsonl").write_text(
        "".join(
            json.dumps({"id": f"q{i}", "question": f"What is {i} plus 2?", "answer": str(i + 2)})
            + "\n"
            for i in range(3)
        )
    )
    # The calibration run: every sample of 4 scored by the (offline) mean-logprob scorer.
    run_batch(resolve_run(_request(tmp_path, "cal", [{"kind": "best_of_n", "n": [4]}])))
    preset = recommended_adaptive(4, scorer={"kind": "mean_logprob"}, calibration_run="cal")
    ctx = resolve_run(_request(tmp_path, "gated", [preset.model_dump(mode="json")]))
    (unit,) = ctx.units
    assert len(unit.config.calibration_items) == 3  # read from run "cal" at the run's start
    result = run_batch(ctx)
    lake = open_ledger(result["ledger"])
    details = [
        json.loads(d)
        for (d,) in lake.execute(
            "SELECT detail_json FROM item_decisions WHERE run_id = 'gated'"
        ).fetchall()
    ]
    assert len(details) == 3
    assert {d["threshold_source"] for d in details} == {"match_majority"}
    report = build_report_from_ledger(lake, "gated")
    assert report.recommended_default == "verifier_gate"  # type: ignore[attr-defined]
    assert f"| {MARK} | 4 |" in render_markdown(report)
