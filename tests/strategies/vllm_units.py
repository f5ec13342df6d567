"""What the real-vLLM strategy tests share: the units they run, a spy engine, and oracles.

The tiny random model's answers are noise, so the tests assert nothing about accuracy. What they
assert holds for any answers: every call the engine served is recorded once (requests and tokens
counted by ``SpyEngine`` around the engine), and each strategy's rule replayed by hand from the
recorded answers and scores (the oracles here: scipy's ``betainc`` for Adaptive-Consistency,
scipy's ``truncnorm`` for OptScale's N*) gives the recorded decision.

The fixtures (the shared engine, the reward-model server, every unit run once) are in this
folder's conftest.py; the tests are ``test_strategies_vllm*.py``.
"""

from __future__ import annotations

import asyncio
import csv
import dataclasses
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from scipy import special, stats
from strategy_helpers import truncnorm_mle

from ttscale.engines.base import Generation, LocalTokenizer, SamplingSpec
from ttscale.grading import canonical_answer
from ttscale.prompts import PROFILES, ModelProfile
from ttscale.runner import Unit, attempt_unit
from ttscale.schemas import Question
from ttscale.strategies.base import StopReason
from ttscale.strategies.kinds.adaptive_consistency import AdaptiveConsistencyConfig
from ttscale.strategies.kinds.best_of_n import BestOfNConfig
from ttscale.strategies.kinds.budget_forcing import BudgetForcingConfig
from ttscale.strategies.kinds.esc import ESCConfig
from ttscale.strategies.kinds.majority import MajorityConfig
from ttscale.strategies.kinds.optscale import OptScaleConfig
from ttscale.strategies.kinds.refinement import RefinementConfig
from ttscale.strategies.kinds.weighted_vote import WeightedVoteConfig

TESTS = Path(__file__).resolve().parents[1]
RUN_SEED = 11
DOCUMENTED_STOPS = {str(reason) for reason in StopReason} - {str(StopReason.ERROR)}
PLAIN = PROFILES["plain"]
# The random model never writes "Final Answer:", so with the plain profile thinking always runs
# into the cap. This profile's delimiter is one letter the model writes every few tokens, so
# budget forcing also meets early ends of thinking, extensions and "model_stopped" on real vLLM.
EARLY_STOP = dataclasses.replace(PLAIN, name="plain-early-stop", end_of_thinking="e")

QUESTIONS = [
    Question(id="add-1", question="What is 11 plus 20?", answer="31", dataset="arithmetic"),
    Question(id="add-2", question="What is 14 plus 26?", answer="40", dataset="arithmetic"),
]


def _mgsm_german() -> Question:
    """Row 1 of the bundled MGSM German slice (tests/data/public/mgsm)."""
    with (TESTS / "data" / "public" / "mgsm" / "mgsm_de.tsv").open(encoding="utf-8") as f:
        question, answer = list(csv.reader(f, delimiter="\t"))[1]
    return Question(id="mgsm-de-1", question=question, answer=answer, language="de", dataset="mgsm")


MGSM_DE = _mgsm_german()

SAMPLE = {"max_tokens": 16, "temperature": 1.0}
CONFIGS: dict[str, Any] = {
    "majority": MajorityConfig(n=[4], **SAMPLE),
    "budget_forcing": BudgetForcingConfig(budgets_tokens=[16], answer_max_tokens=8),
    "best_of_n": BestOfNConfig(n=[4], **SAMPLE),
    "weighted_vote": WeightedVoteConfig(n=[4], **SAMPLE),
    # Threshold 0.7: one answered sample already gives P = 0.75, so both outcomes occur.
    "adaptive_consistency": AdaptiveConsistencyConfig(
        n=[6], threshold=0.7, rule="beta", round_size=2, **SAMPLE
    ),
    # A window of 1 agrees at the first parsed answer; a window of 2 rarely does.
    "esc_window_1": ESCConfig(n=[4], window=1, **SAMPLE),
    "esc_window_2": ESCConfig(n=[6], window=2, **SAMPLE),
    # Mean-logprob scores of a random model are ≈ 1/vocab, far below s*: N* exceeds the cap.
    "optscale": OptScaleConfig(n=[5], k=3, s_star=0.5, q=0.1, **SAMPLE),
    "refinement": RefinementConfig(rounds=[2], **SAMPLE),
}
# Budget forcing on a German MGSM question, every lever and the system prompt alone.
LANGUAGE_FORCING = {
    "language_forcing_all": BudgetForcingConfig(
        budgets_tokens=[24], extensions=2, language_forcing="all", temperature=1.0
    ),
    "language_forcing_system": BudgetForcingConfig(
        budgets_tokens=[24], extensions=0, language_forcing="system", temperature=1.0
    ),
}

RM_NAME = "tiny-rm"


# --- one unit per engine view ------------------------------------------------------------------


class SpyEngine(LocalTokenizer):
    """One unit's view of the shared engine: every request it made and what came back.

    Its tokenizer calls are the shared engine's (in-process, so local).
    """

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.name = inner.name
        self.requests: list[tuple[list[int], SamplingSpec, Generation]] = []

    async def generate(self, prompt_ids: Sequence[int], spec: SamplingSpec) -> Generation:
        generation: Generation = await self.inner.generate(prompt_ids, spec)
        self.requests.append((list(prompt_ids), spec, generation))
        return generation

    def encode(self, text: str) -> list[int]:
        return list(self.inner.encode(text))

    def decode(self, token_ids: Sequence[int]) -> str:
        return str(self.inner.decode(token_ids))

    def chat_prompt(self, messages: Sequence[dict[str, str]]) -> list[int]:
        return list(self.inner.chat_prompt(messages))

    def versions(self) -> dict[str, str]:
        return dict(self.inner.versions())

    async def close(self) -> None:  # the shared engine outlives every unit
        return None


@dataclasses.dataclass
class Ran:
    record: dict[str, Any]
    spy: SpyEngine
    config: Any
    question: Question


def run_all(runner: Any, jobs: list[tuple[str, Question, Any, ModelProfile]]) -> dict[Any, Ran]:
    """Run every (label, question, config, profile) unit concurrently, as a shard does."""
    spies = [SpyEngine(runner.engine) for _ in jobs]

    async def everything() -> list[dict[str, Any]]:
        results = await asyncio.gather(
            *(
                attempt_unit(
                    spy,
                    profile,
                    question,
                    Unit(config.kind, config.budgets()[0], config),
                    "vllm-strategies",
                    RUN_SEED,
                )
                for spy, (_, question, config, profile) in zip(spies, jobs, strict=True)
            )
        )
        return [result.to_json() for result in results]

    records = runner.run(everything())
    return {
        (label, question.id): Ran(record, spy, config, question)
        for (label, question, config, _), record, spy in zip(jobs, records, spies, strict=True)
    }


# --- oracles: each strategy's rule replayed by hand from what was recorded -----------------------


def sample_calls(ran: Ran) -> list[dict[str, Any]]:
    """The sample calls in sample order (one call per sample for sample-based strategies).

    A reward model's scoring calls (phase "score", no generated tokens) are left out.
    """
    calls = [c for c in ran.record["calls"] if c["phase"] != "score"]
    calls = sorted(calls, key=lambda c: c["sample_index"])
    assert [c["sample_index"] for c in calls] == list(range(len(calls)))
    assert all(c["phase"] == "sample" and c["call_index"] == 0 for c in calls)
    return calls


def answer_key(answer: str | None, question: Question) -> str | None:
    return canonical_answer(answer, question.dataset)


def vote(answers: Sequence[str | None], weights: Sequence[float], question: Question) -> Any:
    """Weighted vote by hand: the largest total; ties to the answer seen first; raw first form."""
    totals: dict[str, float] = {}
    first_raw: dict[str, str] = {}
    for answer, weight in zip(answers, weights, strict=True):
        key = answer_key(answer, question)
        if key is None or answer is None:
            continue
        totals[key] = totals.get(key, 0.0) + weight
        first_raw.setdefault(key, answer)
    if not totals:
        return None
    best = max(totals.values())
    return first_raw[next(key for key, total in totals.items() if total == best)]


def mean_prob(call: dict[str, Any]) -> float:
    return math.exp(min(call["cumulative_logprob"] / call["completion_tokens"], 0.0))


def best_index(calls: Sequence[dict[str, Any]], scores: Sequence[float]) -> int:
    """Highest score among samples with an answer (all samples if none), earliest on ties."""
    pool = [i for i, c in enumerate(calls) if c["extracted_answer"] is not None]
    pool = pool or list(range(len(calls)))
    best = max(scores[i] for i in pool)
    return next(i for i in pool if scores[i] == best)


def beta_stop_probability(v1: int, v2: int) -> float:
    """P(p1 > p2) for p ~ Beta(v1 + 1, v2 + 1) = 1 − I_0.5(v1 + 1, v2 + 1)."""
    return 1.0 - float(special.betainc(v1 + 1, v2 + 1, 0.5))


def truncnorm_n_star(scores: Sequence[float], s_star: float, q: float) -> float:
    """Unclipped N* = ln q / ln F(s*) (before the ceiling; inf when no score can exceed s*).

    (μ̂, σ̂) maximise scipy.stats.truncnorm's log-likelihood on [0, 1] over μ ∈ [−10, 11],
    σ ∈ [1e-3, 10] (Nelder-Mead on (μ, ln σ) from several starts).
    """
    mu, sigma = truncnorm_mle(scores)
    below = float(stats.truncnorm.cdf(s_star, -mu / sigma, (1 - mu) / sigma, mu, sigma))
    if below <= 0.0:
        return 0.0
    if below >= 1.0:
        return math.inf
    return math.log(q) / math.log(below)


def check_n_star(recorded: int, ratio: float, k: int, budget: int) -> None:
    """The recorded N* is ⌈ratio⌉ clipped below at k (either side when ratio is on an integer).

    Where F(s*) is within rounding of 1, N* is astronomically large and only "beyond the cap"
    is meaningful (the strategy's own N* tops out at 10^9).
    """
    if ratio > 1000 * budget:
        assert recorded > budget, (recorded, ratio)
        return
    candidates = {math.ceil(ratio)}
    if abs(ratio - round(ratio)) < 1e-6:
        candidates |= {round(ratio), round(ratio) + 1}
    assert recorded in {max(c, k) for c in candidates}, (recorded, ratio)


def assert_optscale(r: Ran, scores: list[float]) -> None:
    """OptScale's N* (from the first k scores), the samples drawn, the stop and the choice."""
    config, budget, detail = r.config, r.record["budget"], r.record["detail"]
    calls = sample_calls(r)
    assert [c["score"] for c in calls] == pytest.approx(scores, rel=1e-6)
    k = min(config.k, budget)
    ratio = truncnorm_n_star(scores[:k], config.s_star, config.q)
    check_n_star(detail["n_star"], ratio, k, budget)
    assert len(calls) == r.record["samples_used"] == min(detail["n_star"], budget)
    expected = "n_star_reached" if detail["n_star"] <= budget else "cap"
    assert r.record["stop_reason"] == expected
    chosen = best_index(calls, scores)  # select="best_of"
    assert detail["chosen_sample"] == chosen
    assert [c["used"] for c in calls] == [i == chosen for i in range(len(calls))]
    assert r.record["final_answer"] == calls[chosen]["extracted_answer"]
