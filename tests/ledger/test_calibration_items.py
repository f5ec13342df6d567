"""The labelled samples of a calibration run, read from a real lake for a match_majority gate."""

from __future__ import annotations

import asyncio
import json
import math
from pathlib import Path
from typing import Any

import pytest

from ttscale.engines.config import ScriptedEngineConfig
from ttscale.engines.scripted import ScriptedEngine
from ttscale.errors import ConfigError
from ttscale.ledger import Ledger
from ttscale.ledger.calibration import calibrated, calibration_items
from ttscale.prompts import PROFILES
from ttscale.runner import Unit, attempt_unit
from ttscale.schemas import BatchRequest, Question
from ttscale.service import resolve_run
from ttscale.strategies.kinds.best_of_n import BestOfNConfig
from ttscale.strategies.kinds.majority import MajorityConfig
from ttscale.strategies.kinds.verifier_gate import VerifierGateConfig

QUESTIONS = [
    Question(id=f"q{i}", question=f"What is {i} plus 10?", answer=str(i + 10)) for i in range(3)
]


def _records(configs: list[Any]) -> list[dict[str, Any]]:
    engine = ScriptedEngine(ScriptedEngineConfig(accuracy=0.5))

    async def go() -> list[dict[str, Any]]:
        return [
            (
                await attempt_unit(engine, PROFILES["plain"], q, Unit(c.kind, b, c), "cal", 7)
            ).to_json()
            for c in configs
            for b in c.budgets()
            for q in QUESTIONS
        ]

    records = asyncio.run(go())
    # Planted stored scores, distinct per sample: item i, sample j scores i + j / 10.
    for record in records:
        for call in record["calls"]:
            if call["score"] is not None:
                call["score"] = int(record["item_id"][1:]) + call["sample_index"] / 10
    return records


def _lake(path: Path, records: list[dict[str, Any]]) -> Path:
    with Ledger(path) as lake:
        lake.add_items("cal", QUESTIONS)
        lake.ingest_units([("cal-part", records)])
    return path


def test_each_item_its_samples_graded_in_order(tmp_path: Path) -> None:
    # majority@4 and best-of-4 share their 4 samples per item: 4 distinct samples, each once.
    records = _records([MajorityConfig(n=[4]), BestOfNConfig(n=[4])])
    lake = _lake(tmp_path / "l.sqlite", records)
    items = calibration_items(lake, "cal", "stored")
    assert [item.item_id for item in items] == ["q0", "q1", "q2"]
    calls = {
        (r["item_id"], c["sample_index"]): c
        for r in records
        if r["strategy"] == "best_of_n"
        for c in r["calls"]
    }
    for i, item in enumerate(items):
        samples = [calls[(item.item_id, j)] for j in range(4)]
        assert item.scores == pytest.approx([i + j / 10 for j in range(4)])
        assert item.answers == tuple(s["extracted_answer"] for s in samples)
        # The scripted engine answers i + 10 when right, a nearby integer otherwise.
        assert item.correct == tuple(s["extracted_answer"] == str(i + 10) for s in samples)
        assert item.completion_tokens == tuple(s["completion_tokens"] for s in samples)
    assert {False, True} <= {c for item in items for c in item.correct}  # both kinds present
    # The mean token probability is recomputed from the logprobs, for every sample.
    by_logprob = calibration_items(lake, "cal", "mean_logprob")
    expected = [
        math.exp(min(calls[(item.item_id, j)]["cumulative_logprob"] / tokens, 0.0))
        for item in by_logprob
        for j, tokens in enumerate(item.completion_tokens)
    ]
    assert [s for item in by_logprob for s in item.scores] == pytest.approx(expected)


def test_an_unscored_sample_is_refused_by_name(tmp_path: Path) -> None:
    # best-of-2 scored samples 0-1; majority@4's samples 2-3 were never scored.
    lake = _lake(tmp_path / "l.sqlite", _records([MajorityConfig(n=[4]), BestOfNConfig(n=[2])]))
    with pytest.raises(ConfigError, match="sample 2 of item 'q0' has no stored score"):
        calibration_items(lake, "cal", "stored")
    with pytest.raises(ConfigError, match="'other' has no samples"):
        calibration_items(lake, "other", "stored")


def test_two_scores_on_one_sample_are_refused(tmp_path: Path) -> None:
    records = _records([BestOfNConfig(n=[2, 3])])
    edited = json.loads(json.dumps(records))
    edited[0]["calls"][0]["score"] += 0.25  # best-of-2's sample 0 scored otherwise than best-of-3's
    lake = _lake(tmp_path / "l.sqlite", edited)
    with pytest.raises(ConfigError, match="different stored scores"):
        calibration_items(lake, "cal", "stored")


def test_a_match_majority_gate_is_handed_the_items(tmp_path: Path) -> None:
    lake = _lake(tmp_path / "l.sqlite", _records([BestOfNConfig(n=[4])]))
    gate = VerifierGateConfig(
        n=[4], calibrate="match_majority", calibration_run="cal", scorer={"kind": "stored"}
    )
    filled = calibrated(gate, lake)
    assert filled.calibration_items == tuple(calibration_items(lake, "cal", "stored"))
    assert filled.calibration_scores is None  # the percentile's input is not read
    assert calibrated(filled, lake) is filled  # already filled: nothing is read again
    # Through the service, as `ttscale run` resolves a request.
    request = BatchRequest(input_uri="in.jsonl", ledger_path=str(lake), strategies=[gate])
    (unit,) = resolve_run(request).units
    assert unit.config.calibration_items == filled.calibration_items
    missing = gate.model_copy(update={"calibration_run": "nope"})
    with pytest.raises(ConfigError, match="calibration run 'nope'"):
        calibrated(missing, lake)
