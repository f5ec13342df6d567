"""A named calibration run: its scores read from a real lake, into the request and into replay."""

from __future__ import annotations

import asyncio
import json
import math
from pathlib import Path
from typing import Any

import pytest
from strategy_helpers import PROFILE, RUN_SEED, CountingEngine, question

from ttscale.errors import ConfigError
from ttscale.ledger import Ledger
from ttscale.ledger.calibration import calibration_scores
from ttscale.runner import Unit, attempt_unit
from ttscale.schemas import BatchRequest
from ttscale.service import resolve_run
from ttscale.strategies.kinds.best_of_n import BestOfNConfig
from ttscale.strategies.kinds.majority import MajorityConfig
from ttscale.strategies.kinds.verifier_gate import VerifierGateConfig

ITEMS = [question(i) for i in range(3)]


def _records(run_id: str, configs: list[Any]) -> list[dict[str, Any]]:
    engine = CountingEngine(accuracy=0.5, vary_logprobs=True)

    async def go() -> list[dict[str, Any]]:
        return [
            (await attempt_unit(engine, PROFILE, q, Unit(c.kind, b, c), run_id, RUN_SEED)).to_json()
            for c in configs
            for b in c.budgets()
            for q in ITEMS
        ]

    return asyncio.run(go())


def _lake(path: Path, run_id: str, records: list[dict[str, Any]]) -> Path:
    with Ledger(path) as lake:
        lake.add_items(run_id, ITEMS)
        lake.ingest_units([(f"{run_id}-part", records)])
    return path


def test_scores_of_each_distinct_sample(tmp_path: Path) -> None:
    # majority@2 and @4 share samples 0-1 of each item: 4 distinct samples per item, not 6.
    records = _records("cal", [MajorityConfig(n=[2, 4]), BestOfNConfig(n=[3])])
    lake = _lake(tmp_path / "l.sqlite", "cal", records)
    distinct: dict[tuple[str, int], dict[str, Any]] = {}
    for record in records:
        for call in record["calls"]:
            distinct[(record["item_id"], call["sample_index"])] = call
    assert len(distinct) == 3 * 4
    expected = [
        math.exp(min(c["cumulative_logprob"] / c["completion_tokens"], 0.0))
        for c in distinct.values()
    ]
    assert sorted(calibration_scores(lake, "cal", "mean_logprob")) == pytest.approx(
        sorted(expected)
    )
    # Stored scores: only best-of-3 stored any (samples 0-2 of each item).
    stored = sorted(calibration_scores(lake, "cal", "reward_model"))
    assert stored == pytest.approx(
        sorted(e for (_, i), e in zip(distinct, expected, strict=True) if i < 3)
    )
    with pytest.raises(ConfigError, match="no mean_logprob scores"):
        calibration_scores(lake, "no-such-run", "mean_logprob")


def test_two_scorers_on_one_sample_are_refused(tmp_path: Path) -> None:
    records = _records("cal", [BestOfNConfig(n=[2, 3])])
    edited = json.loads(json.dumps(records))
    edited[0]["calls"][0]["score"] += 0.25  # best-of-2's sample scored otherwise than best-of-3's
    lake = _lake(tmp_path / "l.sqlite", "cal", edited)
    with pytest.raises(ConfigError, match="different stored scores"):
        calibration_scores(lake, "cal", "reward_model")
    assert len(calibration_scores(lake, "cal", "mean_logprob")) == 9  # logprobs still agree


def test_a_request_naming_a_calibration_run_gets_its_scores(tmp_path: Path) -> None:
    lake = _lake(tmp_path / "l.sqlite", "cal", _records("cal", [MajorityConfig(n=[2])]))
    gate = VerifierGateConfig(n=[4], calibration_run="cal", percentile=80)
    request = BatchRequest(input_uri="in.jsonl", ledger_path=str(lake), strategies=[gate])
    ctx = resolve_run(request)
    (unit,) = ctx.units
    scores = calibration_scores(lake, "cal", "mean_logprob")
    assert unit.config.calibration_scores == tuple(scores) and len(scores) == 6
    # The scores are part of the run: another calibration gives another run id.
    other = gate.model_copy(update={"calibration_scores": (0.5,)})
    calibrated = BatchRequest(input_uri="in.jsonl", ledger_path=str(lake), strategies=[other])
    assert ctx.run_id != resolve_run(calibrated).run_id
    # A request without a calibration run reads nothing: no ledger needed.
    plain = BatchRequest(input_uri="in.jsonl", ledger_path=str(tmp_path / "none" / "l.sqlite"))
    assert resolve_run(plain).request == plain


def test_replay_reads_the_calibration_run(tmp_path: Path, scripted_ledger: Any) -> None:
    """``ttscale replay`` fills the scores in: as if they had been given by hand."""
    from typer.testing import CliRunner

    from ttscale.cli import app

    lake = str(scripted_ledger(tmp_path / "l.sqlite"))  # run r1: majority@8 on 4 items
    scores = calibration_scores(lake, "r1", "mean_logprob")
    named = {"kind": "verifier_gate", "n": [8], "calibration_run": "r1", "percentile": 90}
    given = named | {"calibration_scores": scores}
    outputs = [
        CliRunner().invoke(app, ["replay", "r1", "--ledger", lake, "--strategy", json.dumps(c)])
        for c in (named, given)
    ]
    assert [o.exit_code for o in outputs] == [0, 0], outputs[0].output
    assert "verifier_gate" in outputs[0].stdout and outputs[0].stdout == outputs[1].stdout
    missing = named | {"calibration_run": "r0"}
    refused = CliRunner().invoke(
        app, ["replay", "r1", "--ledger", lake, "--strategy", json.dumps(missing)]
    )
    assert refused.exit_code == 2 and "calibration run 'r0'" in refused.output


def test_replay_hands_a_match_majority_gate_the_labelled_samples(
    tmp_path: Path, scripted_ledger: Any
) -> None:
    """``ttscale replay`` reads the calibration run's labelled samples: as if given by hand."""
    from typer.testing import CliRunner

    from ttscale.cli import app
    from ttscale.ledger.calibration import calibration_items

    lake = str(scripted_ledger(tmp_path / "l.sqlite"))  # run r1: majority@8 on 4 items
    items = [i.model_dump() for i in calibration_items(lake, "r1", "mean_logprob")]
    assert len(items) == 4 and all(len(i["scores"]) == 8 for i in items)
    named = {"kind": "verifier_gate", "n": [4, 8], "calibrate": "match_majority"}
    named |= {"calibration_run": "r1"}
    given = named | {"calibration_items": items}
    outputs = [
        CliRunner().invoke(
            app, ["replay", "r1", "--ledger", lake, "--strategy", json.dumps(c), "--format", "json"]
        )
        for c in (named, given)
    ]
    assert [o.exit_code for o in outputs] == [0, 0], outputs[0].output
    rows = json.loads(outputs[0].stdout)
    assert [r["budget"] for r in rows] == [4, 8] and outputs[0].stdout == outputs[1].stdout
    # The run stored no reward-model scores: refused up front, naming the run and the sample.
    stored = named | {"scorer": {"kind": "stored"}}
    refused = CliRunner().invoke(
        app, ["replay", "r1", "--ledger", lake, "--strategy", json.dumps(stored)]
    )
    assert refused.exit_code == 2 and "calibration run 'r1': sample 0 of item" in refused.output
