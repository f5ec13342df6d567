"""Verifier gate: calibrated threshold, stop at the first passing sample, N_max cap, answer rules.

Each sample's answer and score are scripted per sample index (``ScriptedPoolEngine``); the
score reaches the strategy through the real ``mean_logprob`` scorer (the engine sets the
completion's cumulative logprob to ``log(score) * tokens``), so the expectations below are
computed by hand from the scripted lists.
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Sequence
from typing import Any

import pytest
from pydantic import ValidationError
from strategy_helpers import RUN_SEED, CountingEngine, assert_accounted, question, run

from ttscale.engines.base import Completion, Generation, SamplingSpec
from ttscale.strategies.base import derive_seed
from ttscale.strategies.kinds.verifier_gate import VerifierGateConfig, gate_threshold

ITEM = question(0)  # "What is 11 plus 20?", gold 31


class ScriptedPoolEngine(CountingEngine):
    """Sample i answers ``answers[i]`` (None: no final answer) and scores ``scores[i]``."""

    def __init__(self, answers: Sequence[str | None], scores: Sequence[float]) -> None:
        super().__init__()
        self.answers, self.scores = list(answers), list(scores)
        self.index_of = {derive_seed(RUN_SEED, ITEM.id, i, 0): i for i in range(len(scores))}
        self.drawn: list[int] = []

    async def generate(self, prompt_ids: Sequence[int], spec: SamplingSpec) -> Generation:
        index = self.index_of[spec.seed]  # KeyError: a draw past the scripted samples
        self.drawn.append(index)
        answer = self.answers[index]
        # No digits outside the answer: an unanswered sample must parse to no answer at all.
        text = "thinking" + "." * index + (f" Final Answer: {answer}" if answer else " no idea")
        ids = tuple(self.encode(text))
        logprob = math.log(self.scores[index]) * len(ids)
        completion = Completion(text, ids, "stop", None, logprob)
        self.prompts.append(self.decode(prompt_ids))
        self.produced_tokens += len(ids)
        return Generation((completion,), len(prompt_ids), time.perf_counter() * 0)


def gate(engine: ScriptedPoolEngine, budget: int, **settings: Any) -> dict[str, Any]:
    record = run(engine, VerifierGateConfig(n=[budget], **settings), budget, ITEM)
    assert_accounted(record, engine)
    return record


def test_warmup_sets_the_threshold_and_the_first_later_pass_stops() -> None:
    # Warm-up 0.2, 0.6: the 75th percentile is 0.2 + 0.75 * (0.6 - 0.2) = 0.5. Sample 2 (0.45)
    # and 3 (0.3) fail, sample 4 (0.55) passes; sample 5 is never drawn. Warm-up sample 1 is
    # above the threshold but calibrates only, so it does not stop the gate.
    engine = ScriptedPoolEngine(
        ["40", "31", "31", "40", "40", "31"], [0.2, 0.6, 0.45, 0.3, 0.55, 0.9]
    )
    record = gate(engine, 6, warmup=2, percentile=75)
    assert sorted(engine.drawn) == [0, 1, 2, 3, 4]
    assert record["stop_reason"] == "verifier_passed"
    assert record["samples_used"] == 5
    detail = record["detail"]
    assert detail["threshold"] == pytest.approx(0.5)
    assert detail["threshold_source"] == "item_warmup"
    assert detail["passed_sample"] == 4
    # "best": the best-scored drawn sample is warm-up sample 1 (0.6), answer 31.
    assert detail["chosen_sample"] == 1 and record["final_answer"] == "31"
    assert [c["sample_index"] for c in record["calls"] if c["used"]] == [1]
    assert [c["score"] for c in sorted(record["calls"], key=lambda c: c["sample_index"])] == (
        pytest.approx([0.2, 0.6, 0.45, 0.3, 0.55])
    )


def test_gate_stops_at_n_max_when_nothing_passes() -> None:
    # Threshold = median of warm-up (0.8, 0.4) = 0.6; samples 1..3 all score below it.
    engine = ScriptedPoolEngine(["40", "40", "31", "40", "31"], [0.8, 0.4, 0.5, 0.59, 0.99])
    record = gate(engine, 4, warmup=1 + 1, percentile=50)
    assert sorted(engine.drawn) == [0, 1, 2, 3]
    assert (record["stop_reason"], record["samples_used"]) == ("cap", 4)
    assert record["detail"]["passed_sample"] is None
    assert record["final_answer"] == "40"  # sample 0 scored best


def test_a_sample_without_an_answer_never_passes() -> None:
    # Calibration (0.1, 0.9) at the 50th percentile: 0.5. Sample 0 scores 0.95 with no answer.
    engine = ScriptedPoolEngine([None, "40", "31"], [0.95, 0.3, 0.7])
    record = gate(engine, 3, calibration_scores=(0.1, 0.9), percentile=50)
    assert (record["stop_reason"], record["samples_used"]) == ("verifier_passed", 3)
    assert record["detail"]["passed_sample"] == 2
    # The best-scored sample with an answer wins: sample 2, not the unanswered sample 0.
    assert record["final_answer"] == "31"


def test_calibration_scores_gate_from_the_first_sample() -> None:
    # Percentile 90 of (0.1, 0.3, 0.5, 0.7, 0.9): position 0.9 * 4 = 3.6, 0.7 + 0.6 * 0.2 = 0.82.
    calibration = (0.9, 0.1, 0.5, 0.3, 0.7)  # unsorted: the percentile sorts them
    assert gate_threshold(calibration, 90) == pytest.approx(0.82)
    engine = ScriptedPoolEngine(["40", "31", "31", "40"], [0.81, 0.83, 0.99, 0.1])
    record = gate(engine, 4, calibration_scores=calibration, calibration_run="cal-1", percentile=90)
    assert sorted(engine.drawn) == [0, 1]
    assert (record["stop_reason"], record["samples_used"]) == ("verifier_passed", 2)
    detail = record["detail"]
    assert (detail["threshold_source"], detail["calibration_run"]) == ("calibration", "cal-1")
    assert detail["passed_sample"] == 1 and record["final_answer"] == "31"


def test_weighted_vote_and_best_differ_on_the_same_draws() -> None:
    # Nothing passes 0.95, so all four are drawn. Best: sample 0 (0.9) says 40. Weighted vote:
    # 40 gets 0.9 + 0.1 = 1.0, 31 gets 0.5 + 0.6 = 1.1, so 31 wins.
    answers, scores = ["40", "31", "31", "40"], [0.9, 0.5, 0.6, 0.1]
    settings: dict[str, Any] = {"calibration_scores": (0.95,), "percentile": 50}
    best = gate(ScriptedPoolEngine(answers, scores), 4, **settings)
    vote = gate(ScriptedPoolEngine(answers, scores), 4, answer="weighted_vote", **settings)
    assert best["final_answer"] == "40" and vote["final_answer"] == "31"
    assert vote["detail"]["votes"] == {"40": 2, "31": 2}
    assert vote["detail"]["scores"] == pytest.approx(scores)
    assert all(c["used"] for c in vote["calls"])  # a vote throws nothing away
    assert sum(c["used"] for c in best["calls"]) == 1


def test_budget_below_the_warmup_draws_only_the_budget() -> None:
    engine = ScriptedPoolEngine(["31", "40", "40"], [0.3, 0.9, 0.5])
    record = gate(engine, 2, warmup=3)
    assert sorted(engine.drawn) == [0, 1]
    assert (record["stop_reason"], record["final_answer"]) == ("cap", "40")


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"calibration_scores": ()}, "stored no scores"),
        ({"calibration_scores": (0.5, math.nan)}, "not a finite number"),
        ({"percentile": 0}, "greater than 0"),
        ({"warmup": 0}, "greater than or equal to 1"),
    ],
)
def test_bad_settings_are_refused(settings: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        VerifierGateConfig(**settings)


def test_gate_on_the_scripted_engine_counts_every_token() -> None:
    """On the stock scripted engine with seeded scores: the rule, recomputed from the calls."""
    engine = CountingEngine(accuracy=0.5, vary_logprobs=True)
    record = run(engine, VerifierGateConfig(n=[8], warmup=3, percentile=60), 8)
    assert_accounted(record, engine)
    calls = sorted(record["calls"], key=lambda c: c["sample_index"])
    # CountingEngine's mean logprob is −1.5·U, U seeded by the request: every sample's score.
    seeds = [derive_seed(RUN_SEED, "q0", i, 0) for i in range(8)]
    scores = [math.exp(-1.5 * random.Random(seed).random()) for seed in seeds]
    warm = sorted(scores[:3])
    threshold = warm[1] + 0.2 * (warm[2] - warm[1])  # position 0.6 * 2 = 1.2
    expected = 8
    for i in range(3, 8):
        if scores[i] >= threshold and calls[i]["extracted_answer"] is not None:
            expected = i + 1
            break
    assert len(calls) == expected
    assert [c["score"] for c in calls] == pytest.approx(scores[:expected])
    assert record["detail"]["threshold"] == pytest.approx(threshold)
