"""Probe-and-stop inside each sample of majority vote and Adaptive-Consistency: every sample
stops thinking where probe_stop would, the vote runs over the forced answers, and a config
without the option keeps its fingerprint."""

from __future__ import annotations

import math
from typing import Any

import pytest
from strategy_helpers import CountingEngine, assert_accounted, question, run

from ttscale.schemas import BatchRequest
from ttscale.strategies.kinds.adaptive_consistency import AdaptiveConsistencyConfig
from ttscale.strategies.kinds.majority import MajorityConfig
from ttscale.strategies.kinds.probe_stop import ProbeStopConfig
from ttscale.strategies.probed_samples import ThinkingStopConfig

THINKING = {"stop": "probe", "probe_every": 16, "k": 2, "cap": 2000}


def _engine() -> CountingEngine:
    return CountingEngine(accuracy=1.0, script="settling")


def _expected_stop(index: int, every: int, k: int) -> int:
    """The first probe position whose last k probes come after question ``index`` settled."""
    engine = _engine()
    settle = engine.settle_position(engine.settling_trace(question(index).question))
    assert settle is not None
    return every * math.ceil(settle / every) + (k - 1) * every


def _phases_by_sample(record: dict[str, Any]) -> dict[int, list[str]]:
    phases: dict[int, list[str]] = {}
    for call in record["calls"]:
        phases.setdefault(call["sample_index"], []).append(call["phase"])
    return phases


@pytest.mark.parametrize("index", [0, 2])
def test_every_majority_sample_stops_where_its_probes_agree(index: int) -> None:
    stop_at = _expected_stop(index, 16, 2)
    engine = _engine()
    record = run(engine, MajorityConfig(n=[3], thinking=THINKING), 3, question(index))
    assert_accounted(record, engine)
    thinking = record["detail"]["thinking"]
    assert sorted(thinking["samples"]) == ["0", "1", "2"]
    for trace in thinking["samples"].values():
        assert trace["stopped"] == "probes_agreed"
        assert trace["thinking_tokens"] == stop_at
        assert trace["probe_positions"] == list(range(16, stop_at + 1, 16))
    assert thinking["mean_thinking_tokens"] == stop_at
    probes = len(range(16, stop_at + 1, 16))
    assert _phases_by_sample(record) == {
        i: ["thinking", "probe"] * probes + ["answer"] for i in range(3)
    }
    assert record["samples_used"] == 3
    assert record["final_answer"] == question(index).answer
    assert record["detail"]["votes"] == {question(index).answer: 3}
    # The same trace as probe_stop's with the same settings, sample for sample.
    live = run(
        _engine(),
        ProbeStopConfig(budgets_tokens=[2000], probe_every=16, k=2),
        2000,
        question(index),
    )
    assert live["detail"]["thinking_tokens"] == stop_at


def test_the_sample_cap_stops_thinking_inside_each_sample() -> None:
    capped = {**THINKING, "cap": 40}
    engine = _engine()
    record = run(engine, MajorityConfig(n=[2], thinking=capped), 2)
    assert_accounted(record, engine)
    for trace in record["detail"]["thinking"]["samples"].values():
        assert trace["stopped"] == "cap" and trace["thinking_tokens"] == 40


def test_adaptive_consistency_stops_sampling_and_each_sample_stops_thinking() -> None:
    # Every sample agrees: the Beta rule at 0.95 needs 4 votes (P = 0.875, 0.9375, 0.96875).
    stop_at = _expected_stop(0, 16, 2)
    engine = _engine()
    config = AdaptiveConsistencyConfig(n=[8], thinking=THINKING, round_size=2)
    record = run(engine, config, 8)
    assert_accounted(record, engine)
    assert record["stop_reason"] == "converged" and record["samples_used"] == 4
    thinking = record["detail"]["thinking"]
    assert thinking["mean_thinking_tokens"] == stop_at
    assert set(_phases_by_sample(record)) == {0, 1, 2, 3}


def test_off_by_default_leaves_samples_and_detail_as_they_were() -> None:
    engine = _engine()
    record = run(engine, MajorityConfig(n=[2]), 2)
    assert "thinking" not in record["detail"]
    assert {c["phase"] for c in record["calls"]} == {"sample"}
    assert "thinking" not in MajorityConfig().model_dump()
    on = MajorityConfig(thinking=THINKING).model_dump()
    assert on["thinking"] == ThinkingStopConfig(**THINKING).model_dump()


def _request(strategies: list[dict[str, Any]]) -> BatchRequest:
    return BatchRequest.model_validate(
        {
            "input_uri": "in.jsonl",
            "output_uri": "file://o",
            "ledger_path": "l.duckdb",
            "engine": {"kind": "scripted"},
            "seed": 11,
            "strategies": strategies,
        }
    )


def test_a_request_without_the_option_keeps_its_fingerprint() -> None:
    strategies: list[dict[str, Any]] = [
        {"kind": "majority", "n": [1, 3]},
        {"kind": "adaptive_consistency", "n": [4, 8], "threshold": 0.9},
        {"kind": "probe_stop", "budgets_tokens": [64]},
    ]
    # Computed at fdd5743, before the thinking option and confidence_stop existed.
    assert _request(strategies).fingerprint() == "dc29dac034ee"
    strategies[0] = {**strategies[0], "thinking": THINKING}
    assert _request(strategies).fingerprint() != "dc29dac034ee"
