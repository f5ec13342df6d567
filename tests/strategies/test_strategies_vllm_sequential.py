"""The sequential strategies on real vLLM: budget forcing (also with language forcing on a German
MGSM question) and refinement, their prompts rebuilt call by call from the spy's requests.
"""

from __future__ import annotations

from typing import Any

import pytest
from vllm_units import EARLY_STOP, LANGUAGE_FORCING, MGSM_DE, PLAIN, QUESTIONS, Ran, answer_key

from ttscale.strategies.language import LANGUAGE_NAMES, THINKING_PREFIX, WAIT, detect_language

pytest.importorskip("vllm", reason="vllm is not installed (pip install -e '.[cpu]')")

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("item", [q.id for q in QUESTIONS])
def test_budget_forcing_caps_thinking_and_forces_the_answer(ran: dict[Any, Ran], item: str) -> None:
    r = ran["budget_forcing", item]
    calls = r.record["calls"]
    budget = r.record["budget"]
    thinking = [c for c in calls if c["phase"] in ("thinking", "extension")]
    assert [c["phase"] for c in calls] == ["thinking"] * len(thinking) + ["answer"]
    spent = sum(c["completion_tokens"] for c in thinking)
    assert spent <= budget and r.record["detail"]["thinking_tokens"] == spent
    answer_prompt, answer_spec, _ = r.spy.requests[-1]
    assert calls[-1]["completion_tokens"] <= answer_spec.max_tokens == 8
    assert answer_spec.temperature == 0.0
    if r.record["stop_reason"] == "budget_reached":
        # Thinking ran into the cap: its tokens are kept exactly, then the delimiter is forced.
        assert spent == budget and thinking[-1]["finish_reason"] == "length"
        first_prompt, _, first = r.spy.requests[0]
        forced = r.spy.encode("\n" + PLAIN.end_of_thinking + PLAIN.answer_cue)
        assert answer_prompt == first_prompt + list(first.completions[0].token_ids) + forced
    else:
        assert r.record["stop_reason"] == "model_stopped" and spent < budget


@pytest.mark.parametrize("label", list(LANGUAGE_FORCING))
def test_language_forcing_on_a_german_mgsm_question(ran: dict[Any, Ran], label: str) -> None:
    r = ran[label, MGSM_DE.id]
    config, record, requests = r.config, r.record, r.spy.requests
    calls = record["calls"]
    phases = [c["phase"] for c in calls]
    extensions = phases.count("extension")
    assert phases == ["thinking"] + ["extension"] * extensions + ["answer"]
    assert extensions == record["detail"]["extensions"] <= config.extensions
    # The levers asked for reach the prompt, and only those: the system instruction, the
    # translated thinking prefix, the translated "Wait" (below).
    levers = {"all": {"system", "prefix", "wait"}}.get(config.language_forcing)
    levers = levers or {config.language_forcing}
    first_prompt = r.spy.decode(requests[0][0])
    assert MGSM_DE.question in first_prompt
    system = f"Think and answer only in {LANGUAGE_NAMES['de']}."
    assert (system in first_prompt) == ("system" in levers)
    assert first_prompt.endswith(THINKING_PREFIX["de"]) == ("prefix" in levers)
    wait_text = WAIT["de"] if "wait" in levers else config.wait_text
    # Thinking, call by call, replayed: each call may use what is left of B; a call that ends
    # early (on the delimiter) is cut before it and either extended with the translated wait
    # text (the next call's prompt shows it) or followed by the forced answer.
    delimiter, budget = EARLY_STOP.end_of_thinking, record["budget"]
    rebuilt: list[int] = []
    spent = 0
    for index, (prompt, spec, generation) in enumerate(requests[:-1]):
        (completion,) = generation.completions
        assert prompt == requests[0][0] + rebuilt, phases[index]
        assert spec.max_tokens == budget - spent and spec.stop == (delimiter,)
        spent += len(completion.token_ids)
        if completion.finish_reason == "length":
            rebuilt += completion.token_ids
            assert index == len(requests) - 2  # the cap ends thinking
            continue
        text = completion.text
        segment = text[: text.rfind(delimiter)] if delimiter in text else text
        if phases[index + 1] == "extension":
            rebuilt += r.spy.encode(segment + " " + wait_text)
        else:
            rebuilt += r.spy.encode(segment)
    assert spent == record["detail"]["thinking_tokens"] <= budget
    forced = r.spy.encode("\n" + delimiter + EARLY_STOP.answer_cue)
    assert requests[-1][0] == requests[0][0] + rebuilt + forced
    last_thinking = requests[-2][2].completions[0]
    if last_thinking.finish_reason == "length":
        assert record["stop_reason"] == "budget_reached" and spent == budget
    else:
        assert record["stop_reason"] == "model_stopped"
        assert extensions == config.extensions or spent == budget
    thinking_text = "".join(c["completion_text"] for c in calls[:-1])
    expected_language = detect_language(thinking_text + "\n" + calls[-1]["completion_text"])
    assert record["answered_language"] == expected_language


@pytest.mark.parametrize("item", [q.id for q in QUESTIONS])
def test_refinement_stops_when_an_answer_repeats_or_at_the_cap(
    ran: dict[Any, Ran], item: str
) -> None:
    r = ran["refinement", item]
    calls = r.record["calls"]
    assert [c["phase"] for c in calls] == ["sample"] + ["refine"] * (len(calls) - 1)
    assert [c["call_index"] for c in calls] == list(range(len(calls)))
    keys = [answer_key(c["extracted_answer"], r.question) for c in calls]
    repeats = [i for i in range(1, len(keys)) if keys[i] is not None and keys[i] == keys[i - 1]]
    if r.record["stop_reason"] == "answer_repeated":
        assert repeats == [len(calls) - 1]
    else:
        assert r.record["stop_reason"] == "cap"
        assert repeats == [] and len(calls) - 1 == r.record["budget"]
    # Each revision shows the previous solution: its prompt holds that text.
    for (prompt, _, _), previous in zip(r.spy.requests[1:], calls, strict=False):
        assert previous["completion_text"] in r.spy.decode(prompt)
    answers = [c["extracted_answer"] for c in calls]
    assert r.record["final_answer"] == next((a for a in reversed(answers) if a), None)
