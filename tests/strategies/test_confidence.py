"""Token confidence (DeepConf) and self-certainty, against hand computations; early stopping on
engines that stream and on one that cannot."""

from __future__ import annotations

import asyncio
import math
from collections.abc import Sequence

import numpy as np
import pytest

from ttscale.engines.base import Generation, SamplingSpec, generate_until
from ttscale.engines.scripted import CONFIDENT_P, HESITANT, HESITANT_P, ScriptedEngine
from ttscale.errors import ConfigError
from ttscale.strategies.confidence import (
    GroupConfidenceStop,
    confidence_stats,
    group_confidences,
    keep_threshold,
    token_confidences,
    top_percent,
)
from ttscale.strategies.config import SelfCertaintyScorerConfig
from ttscale.strategies.scorers import make_scorer, self_certainty

LOG = math.log


def test_token_confidence_is_minus_the_mean_top_k_logprob() -> None:
    positions = [(LOG(0.5), LOG(0.25)), (LOG(0.9), LOG(0.05))]
    # By hand: (ln 2 + ln 4) / 2 = 1.5 ln 2; (−ln 0.9 − ln 0.05) / 2.
    assert token_confidences(positions) == pytest.approx(
        [1.5 * LOG(2), (-LOG(0.9) - LOG(0.05)) / 2]
    )
    with pytest.raises(ValueError, match="at least one logprob"):
        token_confidences([()])


def test_group_lowest_and_tail_confidence() -> None:
    confidences = [4.0, 1.0, 3.0, 2.0, 6.0]
    assert group_confidences(confidences, 2) == [2.5, 2.0, 2.5, 4.0]
    # Shorter than the window: one group, the whole trace (as DeepConf's reference code).
    assert group_confidences(confidences, 9) == [3.2]
    assert group_confidences([], 3) == []
    # C_i = −mean(top-k) with one logprob per position: C_i = −logprob.
    stats = confidence_stats([(-c,) for c in confidences], window=3, tail=2)
    assert stats is not None
    assert stats.mean_confidence == pytest.approx(3.2)
    assert stats.lowest_group_confidence == pytest.approx(2.0)  # [1, 3, 2]
    assert stats.tail_confidence == pytest.approx(4.0)  # [2, 6]
    assert confidence_stats([]) is None


def test_group_stop_fires_at_the_first_full_window_below_the_threshold() -> None:
    confidences = [5.0, 5.0, 1.0, 5.0, 1.0, 1.0, 5.0, 5.0]
    window, threshold = 3, 3.0
    # By hand: windows ending at tokens 3..8 have means 11/3, 11/3, 7/3 (< 3) ...: token 5.
    stop = GroupConfidenceStop(threshold, window)
    fired = [stop((-c,)) for c in confidences]
    assert fired.index(True) == 4
    # A trace shorter than the window is never stopped, however unsure.
    short = GroupConfidenceStop(threshold, window=10)
    assert not any(short((-0.1,)) for _ in range(9))


def test_keep_threshold_is_numpy_percentile_and_top_percent_keeps_ties() -> None:
    values = [3.0, 1.0, 5.0, 2.0, 4.0]
    # 60th percentile, linear: rank 0.6·4 = 2.4 between 3 and 4.
    assert keep_threshold(values, 40) == pytest.approx(3.4)
    assert top_percent(values, 40) == [2, 4]
    assert top_percent([2.0, 2.0, 1.0], 10) == [0, 1]
    with pytest.raises(ValueError):
        keep_threshold(values, 0)


def _kl_uniform(probabilities: Sequence[float]) -> float:
    """KL(U ‖ p) = Σ_j (1/V) ln((1/V) / p_j), straight from the definition."""
    v = len(probabilities)
    return sum((1 / v) * LOG((1 / v) / p) for p in probabilities)


def test_self_certainty_scorer_against_the_definition() -> None:
    """Top-3 of a 5-token vocabulary: the scorer spreads the rest evenly over the other two."""
    full = [0.5, 0.2, 0.1, 0.1, 0.1]
    top3 = tuple(LOG(p) for p in full[:3])
    completion = _completion([top3, top3], vocab_size=5)
    scorer = make_scorer(SelfCertaintyScorerConfig(top_logprobs=3))
    score = asyncio.run(scorer.score("q", completion))
    assert score == pytest.approx(1 - math.exp(-_kl_uniform(full)))
    # Uniform guessing scores 0; without top-k logprobs the scorer says what is missing.
    assert self_certainty([[LOG(0.25)] * 4], 4) == pytest.approx(0.0)
    with pytest.raises(ConfigError, match="top-k logprobs"):
        asyncio.run(scorer.score("q", _completion([], vocab_size=None, tokens=2)))


def _completion(top: list[tuple[float, ...]], vocab_size: int | None, tokens: int = 0) -> object:
    from ttscale.engines.base import Completion

    n = tokens or len(top)
    return Completion("x" * n, (1,) * n, "stop", top_logprobs=tuple(top), vocab_size=vocab_size)


def _spec(k: int) -> SamplingSpec:
    return SamplingSpec(max_tokens=400, temperature=0.7, seed=3, top_logprobs=k)


PROMPT = "<|user|>What is 12 plus 30?\n<|assistant|>"


def test_scripted_top_logprobs_follow_the_script() -> None:
    engine = ScriptedEngine()
    ids = engine.encode(PROMPT)
    (completion,) = asyncio.run(engine.generate(ids, _spec(3))).completions
    assert len(completion.top_logprobs) == completion.num_tokens
    hesitant = set()
    start = completion.text.find(HESITANT)
    while start >= 0:
        hesitant |= set(range(start, start + len(HESITANT)))
        start = completion.text.find(HESITANT, start + 1)
    for i, position in enumerate(completion.top_logprobs):
        top = HESITANT_P if i in hesitant else CONFIDENT_P
        assert position == pytest.approx((LOG(top), LOG((1 - top) / 3), LOG((1 - top) / 3)))
    (plain,) = asyncio.run(engine.generate(ids, _spec(0))).completions
    assert plain.top_logprobs == () and plain.vocab_size is None


class _NoStreaming:
    """An engine with ``generate`` only: ``generate_until`` falls back to generate-then-cut."""

    def __init__(self) -> None:
        self.inner = ScriptedEngine()
        self.generated = 0

    async def generate(self, prompt_ids: Sequence[int], spec: SamplingSpec) -> Generation:
        generation = await self.inner.generate(prompt_ids, spec)
        self.generated += generation.completions[0].num_tokens
        return generation


def _first_stop(top: Sequence[tuple[float, ...]], threshold: float, window: int) -> int | None:
    """Brute force: tokens up to the first full window whose mean C_i < threshold."""
    confidences = [-sum(p) / len(p) for p in top]
    for end in range(window, len(confidences) + 1):
        if sum(confidences[end - window : end]) / window < threshold:
            return end
    return None


def _hesitant_prompt(engine: ScriptedEngine) -> tuple[list[int], int]:
    """A prompt and seed whose scripted trace writes the hesitant word."""
    for seed in range(100):
        spec = SamplingSpec(max_tokens=400, seed=seed, top_logprobs=2)
        text = asyncio.run(engine.generate(engine.encode(PROMPT), spec)).completions[0].text
        if HESITANT in text:
            return engine.encode(PROMPT), seed
    raise AssertionError("no scripted trace hesitates")


def test_early_stop_streaming_cuts_and_fallback_counts_everything() -> None:
    engine = ScriptedEngine()
    prompt, seed = _hesitant_prompt(engine)
    spec = SamplingSpec(max_tokens=400, seed=seed, top_logprobs=2)
    (full,) = asyncio.run(engine.generate(prompt, spec)).completions
    window = 4
    threshold = float(np.mean(token_confidences(full.top_logprobs[:window]))) - 0.01
    expected = _first_stop(full.top_logprobs, threshold, window)
    assert expected is not None and expected < full.num_tokens

    streamed = asyncio.run(
        generate_until(engine, prompt, spec, GroupConfidenceStop(threshold, window))
    ).completions[0]
    assert streamed.finish_reason == "abort" and streamed.early_stop_at == expected
    assert streamed.token_ids == full.token_ids[:expected]
    assert full.text.startswith(streamed.text) and len(streamed.text) == expected

    fallback = _NoStreaming()
    cut = asyncio.run(
        generate_until(fallback, prompt, spec, GroupConfidenceStop(threshold, window))
    ).completions[0]
    # It could not stop the engine: every generated token is kept and counted.
    assert cut.finish_reason == "abort" and cut.early_stop_at == expected
    assert cut.num_tokens == full.num_tokens == fallback.generated

    with pytest.raises(ValueError, match="top_logprobs"):
        asyncio.run(generate_until(engine, prompt, _spec(0), GroupConfidenceStop(1.0, 2)))


def test_best_of_n_by_self_certainty_asks_for_top_k_and_picks_the_surest() -> None:
    from strategy_helpers import CountingEngine, run

    from ttscale.engines.scripted import VOCAB_SIZE
    from ttscale.strategies.kinds.best_of_n import BestOfNConfig

    config = BestOfNConfig(n=[6], scorer=SelfCertaintyScorerConfig(top_logprobs=4))
    record = run(CountingEngine(), config, 6)
    assert record["error"] is None, record["error"]
    calls = sorted(record["calls"], key=lambda c: c["sample_index"])
    expected = []
    for call in calls:
        # By hand from the script: the top token's probability, the rest spread evenly.
        text, kl = call["completion_text"], 0.0
        top = ScriptedEngine.top_logprobs_of(text, 4)
        for position in top:
            probabilities = [math.exp(v) for v in position]
            rest = (1 - sum(probabilities)) / (VOCAB_SIZE - 4)
            # KL(U ‖ p) = −ln V − (1/V)·Σ ln p over the whole vocabulary.
            total_log = sum(LOG(p) for p in probabilities) + (VOCAB_SIZE - 4) * LOG(rest)
            kl += -LOG(VOCAB_SIZE) - total_log / VOCAB_SIZE
        expected.append(1 - math.exp(-kl / len(top)))
        assert call["mean_confidence"] is not None  # the calls asked for top-k logprobs
    assert [c["score"] for c in calls] == pytest.approx(expected)
    assert record["detail"]["chosen_sample"] == max(range(6), key=lambda i: expected[i])
