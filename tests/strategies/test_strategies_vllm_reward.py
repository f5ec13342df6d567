"""The ``reward_model`` scorer against a real ``vllm serve`` (pooling runner) of the tiny model:
recorded scores equal what the server answers when asked directly, and the strategies that
use them decide as their rules say.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from vllm_units import (
    PLAIN,
    QUESTIONS,
    RM_NAME,
    SAMPLE,
    assert_optscale,
    best_index,
    run_all,
    sample_calls,
)

from ttscale.strategies.config import RewardModelScorerConfig
from ttscale.strategies.kinds.best_of_n import BestOfNConfig
from ttscale.strategies.kinds.optscale import OptScaleConfig
from ttscale.strategies.kinds.verifier_gate import VerifierGateConfig

pytest.importorskip("vllm", reason="vllm is not installed (pip install -e '.[cpu]')")

pytestmark = pytest.mark.slow


def _served_scores(
    url: str, endpoint: str, question: str, texts: list[str]
) -> tuple[list[list[float]], list[int]]:
    """What the reward server answers for each text, asked directly (the scorer not involved),
    and the prompt tokens its usage reports for each."""
    out, read = [], []
    with httpx.Client(base_url=url, timeout=60) as client:
        for text in texts:
            if endpoint == "pooling":
                messages = [
                    {"role": "user", "content": question},
                    {"role": "assistant", "content": text},
                ]
                response = client.post("/pooling", json={"model": RM_NAME, "messages": messages})
                response.raise_for_status()
                out.append(response.json()["data"][0]["data"])
                read.append(response.json()["usage"]["prompt_tokens"])
            else:
                body = {"model": RM_NAME, "input": f"{question}\n\n{text}"}
                response = client.post("/classify", json=body)
                response.raise_for_status()
                out.append(response.json()["data"][0]["probs"])
                read.append(response.json()["usage"]["prompt_tokens"])
    return out, read


def test_reward_model_scores_come_from_vllm_serve(shared_engine: Any, reward_server: str) -> None:
    # Class 0 is "positive" over /pooling and class 1 over /classify: each is a valid reading of
    # the 2-class output, and the two together catch a scorer that reads the pair any other way.
    pooling = RewardModelScorerConfig(
        base_url=reward_server, model=RM_NAME, endpoint="pooling", positive_index=0
    )
    classify = pooling.model_copy(update={"endpoint": "classify", "positive_index": 1})
    best_of = BestOfNConfig(n=[4], scorer=pooling, **SAMPLE)
    opt = OptScaleConfig(n=[6], k=3, s_star=0.45, q=0.2, scorer=classify, **SAMPLE)
    jobs = [("best_of_n", q, best_of, PLAIN) for q in QUESTIONS]
    jobs.append(("optscale", QUESTIONS[0], opt, PLAIN))
    gate = VerifierGateConfig(n=[6], warmup=2, percentile=50, scorer=pooling, **SAMPLE)
    jobs.append(("verifier_gate", QUESTIONS[0], gate, PLAIN))
    results = run_all(shared_engine, jobs)
    for (label, item), r in results.items():
        assert r.record["error"] is None, f"{label} on {item}: {r.record['error']}"
        calls = sample_calls(r)
        endpoint = r.config.scorer.endpoint
        texts = [c["completion_text"] for c in calls]
        served, read = _served_scores(reward_server, endpoint, r.question.question, texts)
        # Each score's cost is one call of phase "score": the tokens the reward model read.
        scoring = sorted(
            (c for c in r.record["calls"] if c["phase"] == "score"), key=lambda c: c["sample_index"]
        )
        assert [c["sample_index"] for c in scoring] == [c["sample_index"] for c in calls]
        assert [c["prompt_tokens"] for c in scoring] == read and min(read) > 0
        assert all(c["completion_tokens"] == 0 and c["call_index"] == 1 for c in scoring)
        # The served model is a 2-class classifier: one probability pair per text.
        assert all(len(v) == 2 and sum(v) == pytest.approx(1.0, abs=1e-5) for v in served)
        scores = [v[r.config.scorer.positive_index] for v in served]
        assert [c["score"] for c in calls] == pytest.approx(scores, rel=1e-4, abs=1e-6)
        if label == "optscale":
            assert_optscale(r, [c["score"] for c in calls])
            continue
        if label == "verifier_gate":
            assert_gate(
                r.record, [c["score"] for c in calls], [c["extracted_answer"] for c in calls]
            )
            continue
        assert len(calls) == 4 and r.record["stop_reason"] == "budget_reached"
        chosen = best_index(calls, [c["score"] for c in calls])
        assert r.record["detail"]["chosen_sample"] == chosen
        assert [c["used"] for c in calls] == [i == chosen for i in range(len(calls))]
        assert r.record["final_answer"] == calls[chosen]["extracted_answer"]


def assert_gate(record: dict[str, Any], scores: list[float], answers: list[str | None]) -> None:
    """Warm-up 2 at the 50th percentile: the mean of the first two scores; the first later sample
    with an answer at or above it stops the gate, else all 6 are drawn."""
    threshold = (scores[0] + scores[1]) / 2
    later = [i for i in range(2, len(scores)) if answers[i] is not None and scores[i] >= threshold]
    assert record["detail"]["threshold"] == pytest.approx(threshold)
    assert len(scores) == (later[0] + 1 if later else 6)
    assert record["stop_reason"] == ("verifier_passed" if later else "cap")
