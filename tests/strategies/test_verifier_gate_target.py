"""Verifier gate with ``calibrate="match_majority"``: the threshold a labelled calibration run picks.

The calibration pools are small enough to replay by hand; each expectation below is worked out
in the comment next to it. Live gates run on ``ScriptedPoolEngine`` (scores and answers scripted
per sample index, through the real ``mean_logprob`` scorer), as in ``test_verifier_gate.py``.
"""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError
from strategy_helpers import run
from test_verifier_gate import ITEM, ScriptedPoolEngine, gate

from ttscale.strategies.gate_target import CalibrationItem, majority_correct, target_threshold
from ttscale.strategies.kinds.verifier_gate import VerifierGateConfig


def item(item_id: str, scores: list[float], answers: list[str], correct: list[bool]) -> Any:
    return CalibrationItem(
        item_id=item_id,
        scores=tuple(scores),
        answers=tuple(answers),
        correct=tuple(correct),
        completion_tokens=(10,) * len(scores),
    )


# Majority@3: A says g (2 votes, right), B g (right), C y (wrong): 2/3.
A = item("A", [0.2, 0.9, 0.5], ["x", "g", "g"], [False, True, True])
B = item("B", [0.6, 0.1, 0.3], ["g", "y", "g"], [True, False, True])
C = item("C", [0.4, 0.7, 0.8], ["y", "y", "g"], [False, False, True])
# Majority right (g, g), but the gate cannot be: its first sample scores highest and is wrong.
D = item("D", [0.9, 0.1, 0.2], ["x", "g", "g"], [False, True, True])


def test_the_cheapest_percentile_that_matches_majority() -> None:
    # Scores sorted: 0.1 … 0.9 (9 values); percentile p sits at position 8p/100.
    # A threshold ≤ 0.2 lets A stop at its wrong first sample: 1/3 (B right, C's 0.4 wrong).
    # Just above 0.2 A draws on to 0.9 (g, right): 2/3 = majority. The first percentile above
    # 0.2 is p13: position 1.04, 0.2 + 0.04 · 0.1 = 0.204 (p12 gives 0.196, still ≤ 0.2).
    assert [majority_correct(i, 3) for i in (A, B, C)] == [True, True, False]
    chosen = target_threshold((A, B, C), 3, 0.0, "best")
    assert chosen.percentile == 13
    assert chosen.threshold == pytest.approx(0.204)
    assert chosen.majority_accuracy == pytest.approx(2 / 3)
    assert chosen.calibrated_accuracy == pytest.approx(2 / 3)
    assert chosen.calibrated_tokens == pytest.approx((20 + 10 + 10) / 3)  # A draws 2, B, C 1
    # A margin of 0.34 accepts 1/3: the lowest percentile (p0, the minimum 0.1) then suffices.
    loose = target_threshold((A, B, C), 3, 0.34, "best")
    assert (loose.percentile, loose.threshold, loose.calibrated_tokens) == (0, 0.1, 10)


def test_the_threshold_is_chosen_per_n_max() -> None:
    # N_max = 1: majority@1 is the first sample (1/3), which any gate matches: p0.
    assert target_threshold((A, B, C), 1, 0.0, "best").percentile == 0
    # N_max = 2: majority@2 ties in A (x, g) and C (y, y) is wrong; A's tie goes to x (first):
    # 1/3. p0 lets every item stop at sample 0: also 1/3, so p0 again.
    assert target_threshold((A, B, C), 2, 0.0, "best").percentile == 0


def test_when_no_percentile_reaches_majority_nothing_passes() -> None:
    # D: majority is right; any finite candidate (≤ 0.9, the maximum) passes sample 0 (x).
    for answer in ("best", "weighted_vote"):
        chosen = target_threshold((A, D), 3, 0.0, answer)  # type: ignore[arg-type]
        assert chosen.threshold is None and chosen.percentile is None
        # The fallback draws all 3: "best" takes D's 0.9 (x), the vote x 0.9 over g 0.3.
        assert chosen.majority_accuracy == 1.0 and chosen.calibrated_accuracy == 0.5
        assert chosen.calibrated_tokens == 30


def test_the_live_gate_stops_at_the_chosen_threshold() -> None:
    # Threshold 0.204 (see above): sample 0 (0.15) fails, sample 1 (0.3) passes and answers 31.
    engine = ScriptedPoolEngine(["40", "31", "31", "40"], [0.15, 0.3, 0.95, 0.9])
    record = gate(
        engine, 3, calibrate="match_majority", calibration_run="cal", calibration_items=(A, B, C)
    )
    assert sorted(engine.drawn) == [0, 1]
    assert (record["stop_reason"], record["final_answer"]) == ("verifier_passed", "31")
    detail = record["detail"]
    assert detail["threshold"] == pytest.approx(0.204)
    assert (detail["threshold_source"], detail["threshold_percentile"]) == ("match_majority", 13)
    assert detail["calibration_majority_accuracy"] == pytest.approx(2 / 3)
    assert detail["calibration_items"] == 3


def test_the_live_gate_falls_back_to_n_max_samples() -> None:
    # No threshold reaches majority on (A, D): all 3 samples, answered as best-of-3 (0.97: 31).
    # Sample 0 scores highest but has no answer, so it never wins "best".
    engine = ScriptedPoolEngine([None, "31", "40", "31"], [0.99, 0.97, 0.2, 0.1])
    record = gate(
        engine, 3, calibrate="match_majority", calibration_run="cal", calibration_items=(A, D)
    )
    assert sorted(engine.drawn) == [0, 1, 2]
    assert (record["stop_reason"], record["samples_used"]) == ("cap", 3)
    assert record["detail"]["threshold"] is None and record["final_answer"] == "31"


def test_percentile_modes_are_unchanged_by_the_items() -> None:
    # calibrate="percentile" (the default) ignores calibration_items: it gates on the scores.
    engine = ScriptedPoolEngine(["40", "31"], [0.6, 0.9])
    record = gate(engine, 2, calibration_scores=(0.5, 0.7), percentile=100, calibration_items=(A,))
    assert record["detail"]["threshold_source"] == "calibration"
    assert record["detail"]["passed_sample"] == 1


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"calibrate": "match_majority"}, "needs a calibration_run"),
        ({"calibrate": "match_majority", "calibration_items": ()}, "has no items"),
        ({"calibrate": "match_majority", "calibration_run": "c", "target_margin": -0.1}, "greater"),
    ],
)
def test_bad_target_settings_are_refused(settings: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        VerifierGateConfig(**settings)


def test_misaligned_calibration_items_are_refused() -> None:
    with pytest.raises(ValidationError, match="'A': per-sample lists differ"):
        CalibrationItem(
            item_id="A", scores=(0.1, 0.2), answers=("g",), correct=(True,), completion_tokens=(1,)
        )
    with pytest.raises(ValidationError, match="not a finite number"):
        item("A", [float("nan")], ["g"], [True])


def test_a_named_run_that_was_not_read_is_an_error() -> None:
    config = VerifierGateConfig(n=[1], calibrate="match_majority", calibration_run="cal")
    record = run(ScriptedPoolEngine(["31"], [0.5]), config, 1, ITEM)
    assert "calibration run 'cal' was not read" in record["error"]
