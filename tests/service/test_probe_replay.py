"""Offline probing of stored traces (``ttscale replay-probes``): a stored probe_stop trace probed
with the live settings stops where the live run stopped; a budget-forcing trace probed offline
stops where a live probe_stop run with those settings did; only probes and answers are generated."""

from __future__ import annotations

import json
from importlib.resources import files
from pathlib import Path
from typing import Any

import pytest
from ledger_helpers import open_ledger
from typer.testing import CliRunner

from ttscale.cli import app
from ttscale.errors import ConfigError
from ttscale.schemas import BatchRequest
from ttscale.service.probe_replay import replay_probes_from_ledger

RUN = "probe-replay"


@pytest.fixture(scope="module")
def ledger(tmp_path_factory: pytest.TempPathFactory) -> str:
    from ttscale.service import resolve_run, run_batch

    tmp = tmp_path_factory.mktemp("probe-replay")
    request = BatchRequest.model_validate(
        {
            "input_uri": str(files("ttscale") / "data" / "demo.jsonl"),
            "output_uri": f"file://{tmp}/out",
            "ledger_path": str(tmp / "ledger.duckdb"),
            "engine": {"kind": "scripted", "script": "settling", "accuracy": 0.8},
            "strategies": [
                {"kind": "budget_forcing", "budgets_tokens": [300]},
                {"kind": "probe_stop", "budgets_tokens": [300], "probe_every": 16, "k": 2},
            ],
            "max_items": 6,
            "run_id": RUN,
        }
    )
    return str(run_batch(resolve_run(request))["ledger"])


def _live(ledger: str, strategy: str) -> dict[str, dict[str, Any]]:
    con = open_ledger(ledger)
    rows = con.execute(
        "SELECT item_id, stop_reason, final_answer, CAST(detail_json AS VARCHAR) "
        "FROM item_decisions WHERE run_id = ? AND strategy = ?",
        [RUN, strategy],
    ).fetchall()
    return {
        item: {"stop": stop, "answer": answer, "detail": json.loads(detail)}
        for item, stop, answer, detail in rows
    }


def test_a_stored_probe_stop_trace_replays_to_the_live_stop(ledger: str) -> None:
    live = _live(ledger, "probe_stop")
    results = replay_probes_from_ledger(ledger, RUN, "probe_stop", 300, probe_every=16, k=2)
    assert len(results) == len(live) == 6
    assert {r.stop_reason for r in results} >= {"probes_agreed"}
    for r in results:
        recorded = live[r.item_id]
        assert r.error is None
        assert str(r.stop_reason) == recorded["stop"]
        assert r.probe_positions == recorded["detail"]["probe_positions"]
        assert r.probe_answers == recorded["detail"]["probe_answers"]
        assert r.thinking_tokens == recorded["detail"]["thinking_tokens"]
        assert r.final_answer == recorded["answer"]
        assert r.probe_tokens == recorded["detail"]["probe_tokens"]


def test_a_budget_forcing_trace_probed_offline_stops_as_live_probe_stop(ledger: str) -> None:
    live = _live(ledger, "probe_stop")
    results = replay_probes_from_ledger(ledger, RUN, "budget_forcing", 300, probe_every=16, k=2)
    for r in results:
        assert (str(r.stop_reason), r.thinking_tokens, r.final_answer) == (
            live[r.item_id]["stop"],
            live[r.item_id]["detail"]["thinking_tokens"],
            live[r.item_id]["answer"],
        )
    # Under a larger k it stops later (or not at all before the trace ends), never earlier.
    later = replay_probes_from_ledger(ledger, RUN, "budget_forcing", 300, probe_every=16, k=4)
    for r, k2 in zip(later, results, strict=True):
        assert len(r.probe_positions) >= len(k2.probe_positions)


def test_a_trace_shorter_than_the_replay_needs_is_reported_not_guessed(ledger: str) -> None:
    # probe_stop traces end where k=2 agreed: k=6 needs thinking they never generated.
    results = replay_probes_from_ledger(ledger, RUN, "probe_stop", 300, probe_every=16, k=6)
    short = [r for r in results if r.error is not None]
    assert short and all(r.stop_reason is None and "stored trace ends" in r.error for r in short)
    with pytest.raises(ConfigError, match="cap"):
        replay_probes_from_ledger(ledger, RUN, "probe_stop", 300, probe_every=16, k=2, cap=400)
    with pytest.raises(ConfigError, match="no answered units"):
        replay_probes_from_ledger(ledger, RUN, "probe_stop", 64, probe_every=16, k=2)


def test_the_command_prints_the_summary(ledger: str, tmp_path: Path) -> None:
    result = CliRunner().invoke(
        app,
        [
            "replay-probes", RUN, "--strategy", "budget_forcing", "--budget", "300",
            "--probe-every", "16", "--k", "2", "--ledger", ledger,
        ],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "probes_agreed" in result.output
