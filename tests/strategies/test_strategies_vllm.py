"""Every strategy kind on real vLLM (the tiny random model in-process): every call recorded once,
paired seeds, and the sample-based strategies' decisions replayed by hand (``vllm_units``).
"""

from __future__ import annotations

import math
from collections import Counter
from typing import Any

import pytest
from vllm_units import (
    CONFIGS,
    DOCUMENTED_STOPS,
    LANGUAGE_FORCING,
    QUESTIONS,
    Ran,
    answer_key,
    assert_optscale,
    best_index,
    beta_stop_probability,
    mean_prob,
    sample_calls,
    vote,
)

pytest.importorskip("vllm", reason="vllm is not installed (pip install -e '.[cpu]')")

pytestmark = pytest.mark.slow


# --- every unit ----------------------------------------------------------------------------------


def test_every_unit_ran_and_every_call_is_recorded_once(ran: dict[Any, Ran]) -> None:
    labels = {label for label, _ in ran}
    kinds = {r.config.kind for r in ran.values()}
    assert labels == {*CONFIGS, *LANGUAGE_FORCING}
    assert kinds == {
        "majority", "budget_forcing", "best_of_n", "weighted_vote", "adaptive_consistency",
        "esc", "optscale", "refinement",
    }  # fmt: skip
    for (label, item), r in ran.items():
        record, requests = r.record, r.spy.requests
        where = f"{label} on {item}"
        assert record["error"] is None, f"{where}: {record['error']}"
        assert record["stop_reason"] in DOCUMENTED_STOPS, where
        calls = record["calls"]
        # One recorded call per request the engine served, in the same order, and the same
        # tokens: the unit's token total is exactly what the engine produced for it.
        assert len(calls) == len(requests), where
        for call, (prompt, spec, generation) in zip(calls, requests, strict=True):
            (completion,) = generation.completions
            assert call["completion_text"] == completion.text, where
            assert call["completion_tokens"] == len(completion.token_ids) <= spec.max_tokens
            assert call["prompt_tokens"] == generation.prompt_tokens == len(prompt), where
            assert call["thinking_tokens"] + call["answer_tokens"] == call["completion_tokens"]
            assert call["seed"] == spec.seed is not None, where
            assert call["cumulative_logprob"] == pytest.approx(sum(completion.token_logprobs))
        produced = sum(len(g.completions[0].token_ids) for _, _, g in requests)
        assert sum(c["completion_tokens"] for c in calls) == produced, where
        keys = [(c["sample_index"], c["call_index"]) for c in calls]
        assert len(keys) == len(set(keys)), where


def test_sample_i_is_the_same_seed_in_every_unit_of_an_item(ran: dict[Any, Ran]) -> None:
    # Paired samples: fixed-N and adaptive strategies see the same draw i of an item.
    for question in QUESTIONS:
        seeds: dict[int, set[int]] = {}
        for (label, item), r in ran.items():
            if item == question.id and label not in ("budget_forcing", "refinement"):
                for call in r.record["calls"]:
                    seeds.setdefault(call["sample_index"], set()).add(call["seed"])
        assert seeds and all(len(s) == 1 for s in seeds.values())
        assert len({next(iter(s)) for s in seeds.values()}) == len(seeds)


# --- sample-based strategies ---------------------------------------------------------------------


@pytest.mark.parametrize("item", [q.id for q in QUESTIONS])
def test_majority_draws_n_and_votes(ran: dict[Any, Ran], item: str) -> None:
    r = ran["majority", item]
    calls = sample_calls(r)
    assert len(calls) == r.record["budget"] == r.record["samples_used"] == 4
    assert all(c["used"] and c["completion_tokens"] <= 16 for c in calls)
    answers = [c["extracted_answer"] for c in calls]
    assert r.record["final_answer"] == vote(answers, [1.0] * len(answers), r.question)
    assert r.record["stop_reason"] == "budget_reached"


@pytest.mark.parametrize("item", [q.id for q in QUESTIONS])
def test_best_of_n_picks_the_highest_mean_token_probability(ran: dict[Any, Ran], item: str) -> None:
    r = ran["best_of_n", item]
    calls = sample_calls(r)
    assert len(calls) == 4 and r.record["stop_reason"] == "budget_reached"
    scores = [mean_prob(c) for c in calls]
    assert [c["score"] for c in calls] == pytest.approx(scores, rel=1e-9)
    chosen = best_index(calls, scores)
    assert r.record["detail"]["chosen_sample"] == chosen
    assert [c["used"] for c in calls] == [i == chosen for i in range(len(calls))]
    assert r.record["final_answer"] == calls[chosen]["extracted_answer"]


@pytest.mark.parametrize("item", [q.id for q in QUESTIONS])
def test_weighted_vote_sums_scores_per_answer(ran: dict[Any, Ran], item: str) -> None:
    r = ran["weighted_vote", item]
    calls = sample_calls(r)
    assert len(calls) == 4 and all(c["used"] for c in calls)
    scores = [mean_prob(c) for c in calls]
    assert [c["score"] for c in calls] == pytest.approx(scores, rel=1e-9)
    answers = [c["extracted_answer"] for c in calls]
    assert r.record["final_answer"] == vote(answers, scores, r.question)
    assert r.record["stop_reason"] == "budget_reached"


@pytest.mark.parametrize("item", [q.id for q in QUESTIONS])
def test_adaptive_consistency_stops_where_the_beta_rule_says(
    ran: dict[Any, Ran], item: str
) -> None:
    r = ran["adaptive_consistency", item]
    config, budget = r.config, r.record["budget"]
    calls = sample_calls(r)
    keys = [answer_key(c["extracted_answer"], r.question) for c in calls]
    # Replay: after each sample in index order, stop once P(leader is the mode) ≥ threshold.
    stop_at, reason = budget, "cap"
    for m in range(1, len(keys) + 1):
        counts = sorted(Counter(k for k in keys[:m] if k is not None).values(), reverse=True)
        if counts and beta_stop_probability(counts[0], ([*counts, 0])[1]) >= config.threshold:
            stop_at, reason = m, "converged"
            break
    assert (r.record["samples_used"], r.record["stop_reason"]) == (stop_at, reason)
    # Drawn in whole rounds, so the last round may overshoot; the overshoot is discarded.
    rounds = math.ceil(stop_at / config.round_size)
    assert len(calls) == min(rounds * config.round_size, budget)
    assert [c["used"] for c in calls] == [i < stop_at for i in range(len(calls))]
    answers = [c["extracted_answer"] for c in calls[:stop_at]]
    assert r.record["final_answer"] == vote(answers, [1.0] * len(answers), r.question)


@pytest.mark.parametrize("label", ["esc_window_1", "esc_window_2"])
@pytest.mark.parametrize("item", [q.id for q in QUESTIONS])
def test_esc_stops_at_an_agreeing_window_or_the_cap(
    ran: dict[Any, Ran], label: str, item: str
) -> None:
    r = ran[label, item]
    window, budget = r.config.window, r.record["budget"]
    calls = sample_calls(r)
    keys = [answer_key(c["extracted_answer"], r.question) for c in calls]
    drawn, reason = 0, None
    while reason is None:
        chunk = keys[drawn : drawn + window]
        assert len(chunk) == min(window, budget - drawn)  # whole windows were drawn
        drawn += len(chunk)
        if len(chunk) == window and None not in chunk and len(set(chunk)) == 1:
            reason = "window_agreed"
        elif drawn >= budget:
            reason = "cap"
    assert (len(calls), r.record["stop_reason"]) == (drawn, reason)
    assert r.record["samples_used"] == drawn and all(c["used"] for c in calls)
    answers = [c["extracted_answer"] for c in calls]
    assert r.record["final_answer"] == vote(answers, [1.0] * len(answers), r.question)


@pytest.mark.parametrize("item", [q.id for q in QUESTIONS])
def test_optscale_draws_n_star_from_the_first_k_scores(ran: dict[Any, Ran], item: str) -> None:
    r = ran["optscale", item]
    assert_optscale(r, [mean_prob(c) for c in sample_calls(r)])
