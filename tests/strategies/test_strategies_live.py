"""Every registered strategy on the scripted engine: calls recorded, stop reasons, early stopping."""

from __future__ import annotations

import asyncio
import math
from typing import Any

import pytest
from scipy import stats
from strategy_helpers import CountingEngine, truncnorm_mle

from ttscale.engines.config import ScriptedEngineConfig
from ttscale.engines.scripted import ScriptedEngine
from ttscale.prompts import PROFILES
from ttscale.runner import Unit, attempt_unit
from ttscale.schemas import Question
from ttscale.strategies import STRATEGIES
from ttscale.strategies.kinds.adaptive_consistency import AdaptiveConsistencyConfig
from ttscale.strategies.kinds.best_of_n import BestOfNConfig
from ttscale.strategies.kinds.budget_forcing import BudgetForcingConfig
from ttscale.strategies.kinds.esc import ESCConfig
from ttscale.strategies.kinds.optscale import OptScaleConfig
from ttscale.strategies.kinds.refinement import RefinementConfig
from ttscale.strategies.kinds.weighted_vote import WeightedVoteConfig

Q = Question(id="q", question="What is 20 plus 22?", answer="42", dataset="arithmetic")


def _run(
    config: Any, budget: int, accuracy: float, question: Question = Q
) -> tuple[dict, ScriptedEngine]:
    engine = ScriptedEngine(ScriptedEngineConfig(accuracy=accuracy))
    unit = Unit(config.kind, budget, config)
    result = asyncio.run(attempt_unit(engine, PROFILES["plain"], question, unit, "r", 3))
    return result.to_json(), engine


def test_every_config_kind_is_registered() -> None:
    from typing import get_args

    from ttscale.strategies.config import StrategyConfig

    union = get_args(StrategyConfig)[0]
    kinds = {cls.model_fields["kind"].default for cls in get_args(union)}
    assert kinds == set(STRATEGIES)


@pytest.mark.parametrize(
    "config",
    [
        BestOfNConfig(n=[4]),
        WeightedVoteConfig(n=[4]),
        AdaptiveConsistencyConfig(n=[16]),
        ESCConfig(n=[16], window=4),
        OptScaleConfig(n=[16], k=4),
        RefinementConfig(rounds=[3]),
    ],
    ids=lambda c: c.kind,
)
def test_every_call_is_recorded_once(config: Any) -> None:
    budget = config.budgets()[0]
    record, engine = _run(config, budget, accuracy=0.7)
    assert record["error"] is None, record["error"]
    assert len(record["calls"]) == engine.requests  # no retries here: one row per request
    keys = [(c["sample_index"], c["call_index"]) for c in record["calls"]]
    assert len(keys) == len(set(keys))
    for call in record["calls"]:
        assert call["completion_tokens"] == len(call["completion_text"])
        assert call["thinking_tokens"] + call["answer_tokens"] == call["completion_tokens"]
    assert record["stop_reason"] and record["stop_reason"] != "error"


def test_best_of_n_discards_unchosen_samples() -> None:
    record, _ = _run(BestOfNConfig(n=[5]), 5, accuracy=0.6)
    used = [c for c in record["calls"] if c["used"]]
    assert len(used) == 1 and len(record["calls"]) == 5
    assert all(c["score"] is not None for c in record["calls"])
    assert record["detail"]["chosen_sample"] == used[0]["sample_index"]


def test_adaptive_consistency_stops_early_on_an_easy_item() -> None:
    easy, easy_engine = _run(AdaptiveConsistencyConfig(n=[16], round_size=1), 16, accuracy=1.0)
    # Beta rule: 1 − I_0.5(v1+1, 1) = 1 − 0.5^(v1+1) ≥ 0.95 first at v1 = 4 (0.96875).
    assert easy["stop_reason"] == "converged" and easy["samples_used"] == 4
    assert easy_engine.requests == 4
    hard, _ = _run(AdaptiveConsistencyConfig(n=[16], round_size=2), 16, accuracy=0.3)
    assert hard["samples_used"] > easy["samples_used"]


def test_adaptive_consistency_round_overshoot_is_drawn_but_discarded() -> None:
    record, engine = _run(AdaptiveConsistencyConfig(n=[16], round_size=3), 16, accuracy=1.0)
    assert record["samples_used"] == 4 and engine.requests == 6  # two rounds of 3
    assert [c["used"] for c in sorted(record["calls"], key=lambda c: c["sample_index"])] == [
        True, True, True, True, False, False,
    ]  # fmt: skip


def test_esc_stops_after_an_agreeing_window() -> None:
    record, engine = _run(ESCConfig(n=[32], window=4), 32, accuracy=1.0)
    assert record["stop_reason"] == "window_agreed" and engine.requests == 4
    capped, _ = _run(ESCConfig(n=[8], window=4), 8, accuracy=0.0)
    assert capped["samples_used"] == 8


def _oracle_n_star(scores: list[float], s_star: float, q: float, k: int, n_max: int) -> int:
    """N* = ⌈ln q / ln F(s*; μ̂, σ̂)⌉ clipped to [k, n_max], from the scores by scipy alone.

    (μ̂, σ̂) maximise the scipy.stats.truncnorm log-likelihood on [0, 1] over μ ∈ [−10, 11],
    σ ∈ [1e-3, 10] (Nelder-Mead on (μ, ln σ) from several starts).
    """
    mu, sigma = truncnorm_mle(scores)
    below = stats.truncnorm.cdf(s_star, -mu / sigma, (1.0 - mu) / sigma, loc=mu, scale=sigma)
    if below == 0.0:  # every score is certain to exceed s*: the k drawn already suffice
        return k
    return min(max(math.ceil(math.log(q) / math.log(below)), k), n_max)


@pytest.mark.parametrize(
    ("vary", "n_star", "reason"),
    [(False, 4, "n_star_reached"), (True, 12, "n_star_reached")],
    ids=["equal-scores", "varied-scores"],
)
def test_optscale_records_its_fit_and_n_star(vary: bool, n_star: int, reason: str) -> None:
    # Equal scores (constant logprob −0.1): all four are e^−0.1 ≈ 0.905 > s* = 0.7, σ̂ → its lower
    # bound, F(s*) = 0 and N* = k = 4. Varied scores: the fit gives N* = 12 ≤ 32.
    engine = CountingEngine(accuracy=0.8, vary_logprobs=vary)
    config = OptScaleConfig(n=[32], k=4, s_star=0.7, q=0.1)
    unit = Unit(config.kind, 32, config)
    record = asyncio.run(attempt_unit(engine, PROFILES["plain"], Q, unit, "r", 3)).to_json()
    detail = record["detail"]
    assert {"mu", "sigma", "n_star", "decision"} <= set(detail)
    calls = sorted(record["calls"], key=lambda c: c["sample_index"])
    first_k = [c["score"] for c in calls[:4]]
    assert _oracle_n_star(first_k, s_star=0.7, q=0.1, k=4, n_max=32) == n_star
    assert detail["n_star"] == n_star
    assert engine.requests == len(calls) == record["samples_used"] == n_star
    assert record["stop_reason"] == reason


def test_refinement_stops_when_the_answer_repeats() -> None:
    record, _ = _run(RefinementConfig(rounds=[5]), 5, accuracy=1.0)
    assert record["stop_reason"] == "answer_repeated"
    assert [c["phase"] for c in record["calls"]] == ["sample", "refine"]


def test_language_forcing_reaches_the_prompt() -> None:
    from ttscale.strategies.language import WAIT, detect_language

    engine = ScriptedEngine(ScriptedEngineConfig(accuracy=1.0))
    seen: list[str] = []
    original = engine.generate

    async def spy(prompt_ids: Any, spec: Any) -> Any:
        seen.append(engine.decode(prompt_ids))
        return await original(prompt_ids, spec)

    engine.generate = spy  # type: ignore[method-assign]
    question = Question(id="de", question="What is 2 plus 3?", answer="5", language="de")
    config = BudgetForcingConfig(budgets_tokens=[400], extensions=1, language_forcing="all")
    unit = Unit("budget_forcing", 400, config)
    asyncio.run(attempt_unit(engine, PROFILES["plain"], question, unit, "r", 0))
    assert "Think and answer only in German." in seen[0]
    assert "Lass mich Schritt für Schritt nachdenken." in seen[0]
    assert any(WAIT["de"] in p for p in seen[1:])
    assert detect_language("Die Antwort ist, dass wir das nicht haben und die Zahl ist 5") == "de"
    assert detect_language("答えは5です。ですから") == "ja"
    assert detect_language("42") is None
