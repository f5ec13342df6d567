"""Confidence stop (CoDE-Stop): planted probe confidences stop the trace where a hand computation
of the ramping threshold and the degeneration score says; probes are their own phase."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence

import pytest
from pydantic import TypeAdapter, ValidationError
from strategy_helpers import CountingEngine, assert_accounted, question, run

from ttscale.cli.specs import parse_strategy
from ttscale.engines.base import Generation, SamplingSpec
from ttscale.strategies.base import ContinueReason, StopReason
from ttscale.strategies.confidence_stopping import (
    ConfidenceRule,
    confidence_stop_decision,
    degeneration_score,
    ramping_threshold,
)
from ttscale.strategies.config import StrategyConfig
from ttscale.strategies.kinds.confidence_stop import ConfidenceStopConfig

CUE = "\nFinal Answer: "


class PlantedConfidenceEngine(CountingEngine):
    """The "settling" script, whose i-th answer probe (1-based, in call order) has every token at
    probability ``planted[i - 1]``; later calls (the final answer) keep the script's logprobs.
    ``logprobs=False`` returns none at all, as an engine without logprobs would."""

    def __init__(self, planted: Sequence[float], logprobs: bool = True) -> None:
        super().__init__(accuracy=1.0, script="settling")
        self.planted = list(planted)
        self.logprobs = logprobs
        self.probes_seen = 0

    async def generate(self, prompt_ids: Sequence[int], spec: SamplingSpec) -> Generation:
        generation = await super().generate(prompt_ids, spec)
        if not self.logprobs:
            return _with_logprobs(generation, None)
        if not self.decode(prompt_ids).endswith(CUE):
            return generation
        self.probes_seen += 1
        if self.probes_seen > len(self.planted):
            return generation
        return _with_logprobs(generation, math.log(self.planted[self.probes_seen - 1]))


def _with_logprobs(generation: Generation, logprob: float | None) -> Generation:
    completions = tuple(
        dataclasses.replace(
            c, token_logprobs=() if logprob is None else tuple(logprob for _ in c.token_ids)
        )
        for c in generation.completions
    )
    return dataclasses.replace(generation, completions=completions)


def _config(**rule: float) -> ConfidenceStopConfig:
    return ConfidenceStopConfig(budgets_tokens=[2000], probe_every=16, **rule)


# --- the pure rule, against numbers worked out by hand ------------------------------------------


def test_the_threshold_ramps_linearly_then_holds() -> None:
    rule = ConfidenceRule(threshold_start=0.6, threshold_end=0.9, ramp_probes=3)
    assert [round(ramping_threshold(i, rule), 9) for i in (1, 2, 3, 4, 5)] == [
        0.6,
        0.7,
        0.8,
        0.9,
        0.9,
    ]
    with pytest.raises(ValueError, match="start at 1"):
        ramping_threshold(0, rule)


def test_the_degeneration_score_weighs_early_probes_more() -> None:
    # w = 1/ln 2, 1/ln 3, 1/ln 4 = 1.442695, 0.910239, 0.721348;
    # D = (1.442695·0.7 + 0.910239·0.9 + 0.721348·0.8) / 3.074282 = 2.406180 / 3.074282 = 0.78268.
    assert degeneration_score([0.3, 0.1, 0.2]) == pytest.approx(0.78268, abs=1e-5)
    # The same confidences late weigh less: a low first probe moves D more than a low last one.
    assert degeneration_score([0.1, 0.9, 0.9]) > degeneration_score([0.9, 0.9, 0.1])


def test_the_decision_stops_confident_degenerate_or_at_the_cap() -> None:
    rule = ConfidenceRule(threshold_start=0.6, threshold_end=0.9, ramp_probes=3)
    confident = confidence_stop_decision(["5", "5"], [0.5, 0.71], rule)
    assert confident.stop_reason == StopReason.CONFIDENT
    assert confident.threshold == pytest.approx(0.7)
    # An unparsed answer is never confident, however probable its tokens.
    unparsed = confidence_stop_decision(["5", None], [0.5, 0.99], rule)
    assert unparsed.reason == ContinueReason.NOT_CONFIDENT
    assert confidence_stop_decision(["5", None], [0.5, 0.99], rule, at_cap=True).stop_reason == (
        StopReason.CAP
    )
    low = ConfidenceRule(threshold_start=0.99, threshold_end=0.99, degeneration_threshold=0.75)
    assert not confidence_stop_decision([None] * 3, [0.3, 0.1, 0.2], low).stop  # < 4 probes
    degenerate = confidence_stop_decision([None] * 4, [0.3, 0.1, 0.2, 0.1], low)
    assert degenerate.stop_reason == StopReason.DEGENERATE
    with pytest.raises(ValueError, match="logprobs"):
        confidence_stop_decision(["5"], [None], rule)


# --- the strategy on the scripted engine, with planted confidences -----------------------------


def test_stops_at_the_first_parsed_probe_above_the_ramping_threshold() -> None:
    # Question 0's answer settles at token 118: probes at 16 … 112 (numbers 1–7) give no answer,
    # so their confidence 0.95 cannot stop it. τ = 0.6, 0.7, 0.8, 0.9, then 0.9 from probe 4 on.
    # Probe 8 (at 128) answers with 0.75 < 0.9, probe 9 (144) with 0.85 < 0.9, probe 10 (160)
    # with 0.92 ≥ 0.9: thinking stops at 160 tokens.
    planted = [0.95] * 7 + [0.75, 0.85, 0.92, 0.99]
    engine = PlantedConfidenceEngine(planted)
    config = _config(threshold_start=0.6, threshold_end=0.9, ramp_probes=3)
    record = run(engine, config, 2000, question(0))
    assert_accounted(record, engine)
    detail = record["detail"]
    assert record["stop_reason"] == "confident" == detail["stopped"]
    assert detail["probe_positions"] == list(range(16, 161, 16))
    assert detail["thinking_tokens"] == 160
    assert detail["probe_confidences"] == pytest.approx(planted[:10])
    assert detail["probe_answers"] == [None] * 7 + ["31"] * 3
    assert detail["thresholds"] == pytest.approx([0.6, 0.7, 0.8] + [0.9] * 7)
    assert detail["decision"]["reason"] == "confident"
    assert detail["decision"]["statistic"] == pytest.approx(0.92)
    phases = [c["phase"] for c in record["calls"]]
    assert phases == ["thinking", "probe"] * 10 + ["answer"]
    probes = [c for c in record["calls"] if c["phase"] == "probe"]
    assert detail["probe_tokens"] == sum(c["completion_tokens"] for c in probes) > 0
    assert record["final_answer"] == "31" and record["correct"]


@pytest.mark.parametrize(("threshold", "stop_at"), [(0.75, 48), (0.8, 64)])
def test_a_degenerate_history_stops_where_the_hand_computed_score_crosses(
    threshold: float, stop_at: int
) -> None:
    # D_3 = 0.78268 (see above) and D_4 = (2.406180 + 0.621335·0.9) / 3.695617 = 0.80240:
    # δ = 0.75 stops at probe 3 (48 tokens), δ = 0.8 only at probe 4 (64 tokens).
    engine = PlantedConfidenceEngine([0.3, 0.1, 0.2, 0.1, 0.1])
    config = _config(
        threshold_start=0.99,
        threshold_end=0.99,
        degeneration_threshold=threshold,
        degeneration_min_probes=3,
    )
    record = run(engine, config, 2000, question(0))
    assert_accounted(record, engine)
    assert record["stop_reason"] == "degenerate"
    assert record["detail"]["thinking_tokens"] == stop_at
    assert record["detail"]["decision"]["statistic"] == pytest.approx(
        {48: 0.78268, 64: 0.80240}[stop_at], abs=1e-5
    )
    assert record["final_answer"] is None  # stopped before the answer settled


def test_at_the_cap_it_stops_with_the_cap_reason() -> None:
    engine = PlantedConfidenceEngine([0.5] * 20)
    config = ConfidenceStopConfig(budgets_tokens=[100], probe_every=16, threshold_start=0.9)
    record = run(engine, config, 100, question(0))
    assert_accounted(record, engine)
    assert record["stop_reason"] == "cap"
    assert record["detail"]["thinking_tokens"] == 100
    assert record["detail"]["probe_positions"] == [16, 32, 48, 64, 80, 96]


def test_an_engine_without_logprobs_is_a_clear_error() -> None:
    engine = PlantedConfidenceEngine([], logprobs=False)
    record = run(engine, _config(), 2000, question(0))
    assert record["stop_reason"] == "error"
    assert "logprobs" in record["error"]
    assert sum(c["completion_tokens"] for c in record["calls"]) == engine.produced_tokens


def test_the_spec_knows_confidence_stop_and_checks_the_ramp() -> None:
    spec = parse_strategy("confidence_stop:budgets_tokens=64,128,threshold_start=0.8")
    config = TypeAdapter(StrategyConfig).validate_python(spec)
    assert isinstance(config, ConfidenceStopConfig)
    assert config.budgets() == [64, 128] and config.rule().threshold_start == 0.8
    with pytest.raises(ValidationError, match="ramps up"):
        ConfidenceStopConfig(threshold_start=0.99, threshold_end=0.9)


def test_probes_carry_the_language_forcing_and_the_profiles_answer_cue() -> None:
    # The probe prompt is the trace's prompt (German system line and thinking prefix) plus the
    # run profile's delimiter and cue, the one the prompt tells the model to end with.
    engine = PlantedConfidenceEngine([0.1] * 8)
    config = ConfidenceStopConfig(budgets_tokens=[64], probe_every=16, language_forcing="all")
    record = run(engine, config, 64, question(0, language="de"))
    assert_accounted(record, engine)
    calls = record["calls"]
    probes = [p for p, c in zip(engine.prompts, calls, strict=True) if c["phase"] == "probe"]
    assert len(probes) == 3  # at 16, 32 and 48; none at the cap
    for prompt in probes:
        assert "Think and answer only in German." in prompt
        assert "<|assistant|>Lass mich Schritt für Schritt nachdenken." in prompt
        assert prompt.endswith(CUE)
