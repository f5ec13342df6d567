"""Sequential refinement: the previous solution reaches the next prompt; early stop on repeat."""

from __future__ import annotations

import itertools

from strategy_helpers import CountingEngine, assert_accounted, question, run

from ttscale.grading import canonical_answer
from ttscale.strategies.kinds.refinement import RefinementConfig


def test_repeated_answer_stops_after_one_revision() -> None:
    engine = CountingEngine(accuracy=1.0)
    record = run(engine, RefinementConfig(rounds=[4]), 4)
    assert_accounted(record, engine)
    assert record["stop_reason"] == "answer_repeated"
    assert [c["phase"] for c in record["calls"]] == ["sample", "refine"]
    assert record["detail"]["revisions"] == 1
    first = record["calls"][0]["completion_text"]
    assert first in engine.prompts[1]  # the model re-reads its previous solution
    assert RefinementConfig().instruction in engine.prompts[1]
    assert record["correct"]


def test_round_cap_bounds_the_calls() -> None:
    reasons = set()
    for i in range(10):
        engine = CountingEngine(accuracy=0.0)
        record = run(engine, RefinementConfig(rounds=[2]), 2, question(i))
        assert_accounted(record, engine)
        answers = record["detail"]["answers"]
        assert len(record["calls"]) == len(answers) <= 3
        reasons.add(record["stop_reason"])
        keys = [canonical_answer(a, "arithmetic") for a in answers]
        if record["stop_reason"] == "cap":
            assert len(answers) == 3
            assert all(a != b for a, b in itertools.pairwise(keys))
        else:
            assert keys[-1] == keys[-2]
    assert "cap" in reasons
