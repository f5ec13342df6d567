"""Probe-and-stop on real vLLM: the tiny random model in-process (the session's shared engine of
``tests/strategies/conftest.py``, helpers from ``vllm_units.py``), every call recorded, probes as their own phase.

The model's answers are noise, so nothing here asserts accuracy: what is asserted holds for any
answers. Each probe is branched off exactly the thinking so far, thinking never exceeds the cap,
and the recorded stop is what the rule says for the recorded probe answers.
"""

from __future__ import annotations

import math
from typing import Any

import pytest
from vllm_units import PLAIN, QUESTIONS, SpyEngine, run_all

from ttscale.grading import canonical_answer
from ttscale.strategies.confidence_stopping import confidence_stop_decision
from ttscale.strategies.kinds.confidence_stop import ConfidenceStopConfig
from ttscale.strategies.kinds.probe_stop import ProbeStopConfig
from ttscale.strategies.stopping import probes_agree_decision

pytestmark = pytest.mark.slow

# k=1 stops at the first parsed probe answer, so on noise both stops occur.
CONFIGS = {
    "k1": ProbeStopConfig(budgets_tokens=[32], probe_every=8, k=1, probe_max_tokens=4),
    "k2": ProbeStopConfig(budgets_tokens=[40], probe_every=12, k=2, probe_max_tokens=6),
}


# A low threshold, so that on noise the confident stop occurs as well as the cap.
CONFIDENT = ConfidenceStopConfig(
    budgets_tokens=[40], probe_every=8, probe_max_tokens=4, threshold_start=0.3, threshold_end=0.5
)


@pytest.fixture(scope="module")
def ran(shared_engine: Any) -> dict[Any, Any]:
    configs = {**CONFIGS, "confidence": CONFIDENT}
    jobs = [(label, q, config, PLAIN) for label, config in configs.items() for q in QUESTIONS]
    return run_all(shared_engine, jobs)


@pytest.mark.parametrize("item", [q.id for q in QUESTIONS])
def test_confidence_stop_reads_vllms_logprobs_and_stops_by_its_rule(
    ran: dict[Any, Any], item: str
) -> None:
    r = ran["confidence", item]
    record, spy, detail = r.record, r.spy, r.record["detail"]
    assert record["error"] is None, record["error"]
    calls, requests = record["calls"], spy.requests
    produced = sum(len(g.completions[0].token_ids) for _, _, g in requests)
    assert sum(c["completion_tokens"] for c in calls) == produced
    # Each probe's confidence is the mean probability of the tokens vLLM returned for it.
    probes = [g.completions[0] for c, (_, _, g) in zip(calls, requests, strict=True)
              if c["phase"] == "probe"]  # fmt: skip
    assert probes and all(len(p.token_logprobs) == len(p.token_ids) > 0 for p in probes)
    expected = [sum(math.exp(lp) for lp in p.token_logprobs) / len(p.token_ids) for p in probes]
    assert detail["probe_confidences"] == pytest.approx(expected)
    assert all(0.0 < c <= 1.0 for c in expected)
    keys = [canonical_answer(a, r.question.dataset) for a in detail["probe_answers"]]
    rule = CONFIDENT.rule()
    for n in range(1, len(keys)):
        assert not confidence_stop_decision(keys[:n], expected[:n], rule).stop
    final = confidence_stop_decision(keys, expected, rule, at_cap=record["stop_reason"] == "cap")
    assert final.stop and str(final.reason) == record["stop_reason"]


@pytest.mark.parametrize("label", list(CONFIGS))
@pytest.mark.parametrize("item", [q.id for q in QUESTIONS])
def test_probe_stop_probes_the_trace_and_records_every_call(
    ran: dict[Any, Any], label: str, item: str
) -> None:
    r = ran[label, item]
    record, config, spy = r.record, r.config, r.spy
    assert isinstance(spy, SpyEngine) and record["error"] is None, record["error"]
    calls, requests, detail = record["calls"], spy.requests, record["detail"]
    assert len(calls) == len(requests)
    phases = [c["phase"] for c in calls]
    assert phases[-1] == "answer" and set(phases[:-1]) <= {"thinking", "probe"}
    # Every token the engine produced is recorded; probes are answer tokens.
    produced = sum(len(g.completions[0].token_ids) for _, _, g in requests)
    assert sum(c["completion_tokens"] for c in calls) == produced
    for call, (_, spec, _) in zip(calls, requests, strict=True):
        if call["phase"] == "probe":
            assert call["thinking_tokens"] == 0 and spec.max_tokens == config.probe_max_tokens
            assert spec.temperature == 0.0
    # Each probe is branched off exactly the thinking so far, then the delimiter and cue.
    forced = spy.encode("\n" + PLAIN.end_of_thinking + PLAIN.answer_cue)
    first_prompt = requests[0][0]
    thinking: list[int] = []
    positions = []
    for phase, (prompt, _, generation) in zip(phases, requests, strict=True):
        if phase == "thinking":
            assert prompt == first_prompt + thinking
            thinking += generation.completions[0].token_ids
        else:
            assert prompt == first_prompt + thinking + forced
            if phase == "probe":
                positions.append(len(thinking))
    budget = record["budget"]
    assert detail["probe_positions"] == positions
    assert all(p % config.probe_every == 0 and p < budget for p in positions)
    assert detail["thinking_tokens"] == len(thinking) <= budget
    answers = [c["extracted_answer"] for c in calls if c["phase"] == "probe"]
    assert detail["probe_answers"] == answers
    # The recorded stop is the rule's, replayed on the recorded answers; no earlier stop.
    keys = [canonical_answer(a, r.question.dataset) for a in answers]
    for n in range(1, len(keys)):
        assert not probes_agree_decision(keys[:n], config.k).stop
    if record["stop_reason"] == "probes_agreed":
        assert probes_agree_decision(keys, config.k).stop
    else:
        # The random model never writes "Final Answer:": thinking ran into the cap.
        assert record["stop_reason"] == "cap" and len(thinking) == budget
