"""DeepConf on the scripted engine: every decision recomputed by hand from the recorded calls.

The scripted model writes the word "check" with low confidence, so traces that hesitate have a
low group confidence and can be aborted; the oracles below recompute confidences from the
script's own logprobs (``ScriptedEngine.top_logprobs_of``) with plain loops and numpy.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from fractions import Fraction
from typing import Any

import numpy as np
import pytest
from strategy_helpers import CountingEngine, question, run

from ttscale.engines.base import SamplingSpec
from ttscale.grading import canonical_answer
from ttscale.strategies.kinds.deepconf import DeepConfConfig

K = 3
WINDOW = 12


def _confidences(text: str) -> list[float]:
    """C_i of each token of a scripted trace, from the script's logprobs."""
    return [-sum(p) / len(p) for p in CountingEngine.top_logprobs_of(text, K)]


def _window_means(confidences: Sequence[float], window: int) -> list[float]:
    """Mean of each full window (the whole trace if shorter), summed exactly (as fractions):
    traces repeat the script's few values, so windows tie, and must tie here exactly too."""
    exact = [Fraction(c) for c in confidences]
    if len(exact) < window:
        return [float(sum(exact) / len(exact))]
    return [float(sum(exact[i : i + window]) / window) for i in range(len(exact) - window + 1)]


def _lowest_group(confidences: Sequence[float], window: int) -> float:
    return min(_window_means(confidences, window))


def _full_text(engine: CountingEngine, call: dict[str, Any], config: DeepConfConfig) -> str:
    """The trace the scripted model writes for this call's seed when nothing stops it."""
    spec = SamplingSpec(max_tokens=config.max_tokens, seed=call["seed"], top_logprobs=K)
    prompt = engine.prompts[0]
    return asyncio.run(engine.generate(engine.encode(prompt), spec)).completions[0].text


def _online(**overrides: Any) -> DeepConfConfig:
    settings: dict[str, Any] = {
        "n": [12],
        "warmup": 4,
        "keep_percent": 50.0,
        "window": WINDOW,
        "consensus": 0.95,
        "top_logprobs": K,
        "max_tokens": 400,
    }
    return DeepConfConfig(**(settings | overrides))


def _share(calls: Sequence[dict[str, Any]], threshold: float, window: int) -> float:
    totals: dict[str, float] = {}
    for call in calls:
        if call["finish_reason"] == "abort":
            continue
        weight = _lowest_group(_confidences(call["completion_text"]), window)
        key = canonical_answer(call["extracted_answer"], "arithmetic")
        if weight >= threshold and key is not None:
            totals[key] = totals.get(key, 0.0) + weight
    return max(totals.values()) / sum(totals.values()) if totals else 0.0


@pytest.mark.parametrize("item", range(6))
def test_online_threshold_aborts_and_consensus_by_hand(item: int) -> None:
    config = _online()
    engine = CountingEngine(accuracy=0.5)
    record = run(engine, config, 12, question(item))
    assert record["error"] is None, record["error"]
    calls = sorted(record["calls"], key=lambda c: c["sample_index"])
    detail = record["detail"]
    # Every token generated is recorded once, aborted traces' included.
    assert sum(c["completion_tokens"] for c in calls) == engine.produced_tokens

    warm = [_lowest_group(_confidences(c["completion_text"]), WINDOW) for c in calls[:4]]
    threshold = float(np.percentile(warm, 50))
    assert detail["threshold"] == pytest.approx(threshold)

    for call in calls[4:]:
        full = _confidences(_full_text(engine, call, config))
        means = _window_means(full, WINDOW) if len(full) >= WINDOW else []
        stop = next((i + WINDOW for i, mean in enumerate(means) if mean < threshold), None)
        if stop is None:
            assert call["finish_reason"] != "abort"
        else:
            # Aborted right at the first window below the bar; every streamed token recorded.
            assert call["finish_reason"] == "abort" and call["completion_tokens"] == stop
            assert not call["used"]

    # Sampling stops at the first trace count whose weighted vote reaches consensus.
    shares = [_share(calls[:k], threshold, WINDOW) for k in range(4, len(calls) + 1)]
    assert all(s < 0.95 for s in shares[:-1])
    assert (shares[-1] >= 0.95) == (record["stop_reason"] == "consensus")
    if shares[-1] < 0.95:
        assert len(calls) == 12 and record["stop_reason"] == "cap"
    for call in calls:
        # An aborted trace's tokens keep the confidences they had in the whole trace.
        confidences = _confidences(_full_text(engine, call, config))[: call["completion_tokens"]]
        assert call["lowest_group_confidence"] == pytest.approx(_lowest_group(confidences, WINDOW))


def test_online_runs_exercise_aborts_and_both_stops() -> None:
    """The items above meet aborted and finished traces, consensus and the cap."""
    reasons, aborted, finished = set(), 0, 0
    for item in range(6):
        record = run(CountingEngine(accuracy=0.5), _online(), 12, question(item))
        reasons.add(record["stop_reason"])
        later = [c for c in record["calls"] if c["sample_index"] >= 4]
        aborted += sum(c["finish_reason"] == "abort" for c in later)
        finished += sum(c["finish_reason"] != "abort" for c in later)
    assert aborted and finished and reasons == {"consensus", "cap"}


def test_consensus_in_warmup_draws_nothing_more() -> None:
    engine = CountingEngine(accuracy=1.0)
    record = run(engine, _online(), 12)
    assert record["stop_reason"] == "consensus"
    assert record["samples_used"] == 4 and len(record["calls"]) == 4


def test_offline_filters_top_percent_and_weights_by_confidence() -> None:
    config = _online(mode="offline", keep_percent=40.0, confidence="tail", tail=10)
    engine = CountingEngine(accuracy=0.4)
    record = run(engine, config, 10)
    calls = sorted(record["calls"], key=lambda c: c["sample_index"])
    tails = []
    for call in calls:
        confidences = _confidences(call["completion_text"])
        tails.append(sum(confidences[-10:]) / len(confidences[-10:]))
    cut = np.percentile(tails, 60)
    kept = [i for i, t in enumerate(tails) if t >= cut]
    assert record["detail"]["kept"] == kept
    assert [c["used"] for c in calls] == [i in kept for i in range(10)]
    totals: dict[str, float] = {}
    for i in kept:
        key = canonical_answer(calls[i]["extracted_answer"], "arithmetic")
        if key is not None:
            totals[key] = totals.get(key, 0.0) + tails[i]
    winner = max(totals, key=lambda k: totals[k])
    assert canonical_answer(record["final_answer"], "arithmetic") == winner
    assert record["stop_reason"] == "budget_reached" and record["samples_used"] == 10


def test_warmup_larger_than_budget_is_refused() -> None:
    with pytest.raises(ValueError, match="warmup"):
        DeepConfConfig(n=[4, 8], warmup=6)
