"""Probe-and-stop: thinking stops where k probes first agree, at the cap, or where the model
ends it; probe calls are their own phase and every token of them counts, up to the ledger."""

from __future__ import annotations

import asyncio
import math
from importlib.resources import files
from pathlib import Path

import pytest
from ledger_helpers import open_ledger
from pydantic import TypeAdapter
from strategy_helpers import PROFILE, RUN_SEED, CountingEngine, assert_accounted, question, run

from ttscale.cli.specs import parse_strategy
from ttscale.runner import Unit, attempt_unit
from ttscale.schemas import BatchRequest
from ttscale.strategies import registry
from ttscale.strategies.base import ContinueReason, StopReason
from ttscale.strategies.config import StrategyConfig
from ttscale.strategies.kinds.probe_stop import ProbeStopConfig, replay_probes
from ttscale.strategies.stopping import probes_agree_decision
from ttscale.strategies.strategy_set import StrategySet


def _engine() -> CountingEngine:
    return CountingEngine(accuracy=1.0, script="settling")


def _trace(index: int = 0) -> str:
    """The "settling" script's whole trace for question ``index``."""
    return _engine().settling_trace(question(index).question)


def _settle_position(index: int = 0) -> int:
    """Where the "settling" script's trace for question ``index`` writes its answer."""
    engine = _engine()
    trace = engine.settling_trace(question(index).question)
    position = engine.settle_position(trace)
    assert position is not None
    return position


def _expected_stop(settle: int, every: int, k: int) -> int:
    """The first probe position whose last k probes all come after the answer settled."""
    return every * math.ceil(settle / every) + (k - 1) * every


# --- the pure rule ---------------------------------------------------------------------------


def test_k_consecutive_equal_answers_stop() -> None:
    assert not probes_agree_decision([], 2).stop
    assert probes_agree_decision(["3", "3"], 2).stop_reason == StopReason.PROBES_AGREED
    decision = probes_agree_decision(["3", "4", "4", "4"], 3)
    assert decision.stop and decision.statistic == 3.0 and decision.samples_seen == 4
    # Equal answers that are not consecutive do not stop; None never agrees, even with None.
    assert probes_agree_decision(["4", "3", "4"], 2).reason == ContinueReason.PROBES_DISAGREED
    assert not probes_agree_decision([None, None, None], 2).stop
    assert probes_agree_decision(["5"], 1).stop
    capped = probes_agree_decision(["3", "4"], 2, at_cap=True)
    assert capped.stop_reason == StopReason.CAP and capped.statistic == 1.0
    assert probes_agree_decision(["4", "4"], 2, at_cap=True).stop_reason == StopReason.PROBES_AGREED
    with pytest.raises(ValueError, match="k must be"):
        probes_agree_decision(["1"], 0)


# --- the strategy on the scripted engine ------------------------------------------------------


@pytest.mark.parametrize(("every", "k", "index"), [(16, 2, 0), (16, 3, 1), (7, 2, 2), (40, 1, 3)])
def test_stops_at_the_first_position_where_k_probes_agree(every: int, k: int, index: int) -> None:
    settle = _settle_position(index)
    stop_at = _expected_stop(settle, every, k)
    trace = _trace(index)
    assert stop_at < trace.index("Final Answer:")  # the trace is still thinking there
    engine = _engine()
    config = ProbeStopConfig(budgets_tokens=[2000], probe_every=every, k=k)
    record = run(engine, config, 2000, question(index))
    assert_accounted(record, engine)
    detail = record["detail"]
    assert record["stop_reason"] == "probes_agreed" == detail["stopped"]
    assert detail["probe_positions"] == list(range(every, stop_at + 1, every))
    settled = [p >= settle for p in detail["probe_positions"]]
    gold = question(index).answer
    assert detail["probe_answers"] == [gold if s else None for s in settled]
    assert detail["thinking_tokens"] == stop_at
    assert record["final_answer"] == gold and record["correct"]
    phases = [c["phase"] for c in record["calls"]]
    n = len(detail["probe_positions"])
    assert phases == ["thinking", "probe"] * n + ["answer"]
    # The final answer is forced from the same prefix as the last probe.
    assert engine.prompts[-1] == engine.prompts[-2]
    assert engine.prompts[-1].endswith("\nFinal Answer: ")


def test_probe_tokens_are_answer_tokens_and_count_as_spent() -> None:
    engine = _engine()
    record = run(engine, ProbeStopConfig(budgets_tokens=[2000], probe_every=16, k=2), 2000)
    assert_accounted(record, engine)
    probes = [c for c in record["calls"] if c["phase"] == "probe"]
    assert probes and all(c["thinking_tokens"] == 0 for c in probes)
    assert all(c["answer_tokens"] == c["completion_tokens"] > 0 for c in probes)
    assert record["detail"]["probe_tokens"] == sum(c["completion_tokens"] for c in probes)
    assert [c["extracted_answer"] for c in probes] == record["detail"]["probe_answers"]
    thinking = sum(c["thinking_tokens"] for c in record["calls"])
    assert thinking == record["detail"]["thinking_tokens"]
    # The unit's total, as the runner reports it, holds the probes.
    engine = _engine()
    config = ProbeStopConfig(budgets_tokens=[2000], probe_every=16, k=2)
    result = asyncio.run(
        attempt_unit(engine, PROFILE, question(), Unit("probe_stop", 2000, config), "t", RUN_SEED)
    )
    assert result.completion_tokens == engine.produced_tokens
    assert result.completion_tokens == thinking + record["detail"]["probe_tokens"] + sum(
        c["completion_tokens"] for c in record["calls"] if c["phase"] == "answer"
    )


def test_at_the_cap_it_stops_with_the_cap_reason() -> None:
    settle = _settle_position()
    # Thinking reaches the cap after the first settled probe, before a second one agrees.
    cap = 16 * math.ceil(settle / 16) + 10
    engine = _engine()
    record = run(engine, ProbeStopConfig(budgets_tokens=[cap], probe_every=16, k=2), cap)
    assert_accounted(record, engine)
    assert record["stop_reason"] == "cap"
    assert record["detail"]["thinking_tokens"] == cap
    assert record["detail"]["probe_positions"][-1] == cap - 10  # no probe at the cap itself
    thinking = [c for c in record["calls"] if c["phase"] == "thinking"]
    assert thinking[-1]["completion_tokens"] == 10 and thinking[-1]["finish_reason"] == "length"
    assert record["final_answer"] == question().answer  # forced at the cap, settled by then


def test_an_early_end_of_thinking_stops_as_the_model_did() -> None:
    # k larger than the probes that fit in the trace: the model writes its delimiter first.
    engine = _engine()
    record = run(engine, ProbeStopConfig(budgets_tokens=[4000], probe_every=8, k=64), 4000)
    assert_accounted(record, engine)
    assert record["stop_reason"] == "model_stopped"
    # The delimiter is split across two chunks here ("Final An" | "swer: 31"): still the end.
    trace = _trace()
    thinking = trace[: trace.index("Final Answer:")]
    assert engine.prompts[-1].endswith("<|assistant|>" + thinking + "\nFinal Answer: ")
    assert record["detail"]["thinking_tokens"] >= len(thinking) + len("Final Answer:")
    assert record["final_answer"] == "31"


@pytest.mark.parametrize("every", [5, 7, 13, 64])
def test_the_delimiter_ends_thinking_wherever_the_chunks_split_it(every: int) -> None:
    engine = _engine()
    record = run(engine, ProbeStopConfig(budgets_tokens=[4000], probe_every=every, k=64), 4000)
    assert_accounted(record, engine)
    trace = _trace()
    thinking = trace[: trace.index("Final Answer:")]
    assert record["stop_reason"] == "model_stopped"
    assert engine.prompts[-1].endswith("<|assistant|>" + thinking + "\nFinal Answer: ")


def test_every_probe_on_the_default_script_forces_the_answer_cue() -> None:
    engine = CountingEngine(accuracy=1.0)  # every probe answers right: the first k agree
    record = run(engine, ProbeStopConfig(budgets_tokens=[10_000], probe_every=4, k=3), 10_000)
    assert_accounted(record, engine)
    assert record["stop_reason"] in ("probes_agreed", "model_stopped")
    calls = record["calls"]
    probes = [p for p, c in zip(engine.prompts, calls, strict=True) if c["phase"] == "probe"]
    assert probes and all(p.endswith(PROFILE.end_of_thinking + " ") for p in probes)


# --- configuration: the CLI spec and the run form come from the registry ------------------------


def test_the_spec_and_the_run_form_know_probe_stop() -> None:
    spec = parse_strategy("probe_stop:budgets_tokens=64,128,probe_every=16,k=2")
    config = TypeAdapter(StrategyConfig).validate_python(spec)
    assert isinstance(config, ProbeStopConfig)
    assert (config.budgets(), config.probe_every, config.k) == ([64, 128], 16, 2)
    entry = registry.get("probe_stop")
    assert entry.budget == registry.get("budget_forcing").budget
    assert not entry.enabled_by_default and not entry.replayable
    assert "probe_stop" in StrategySet.model_fields
    assert StrategySet().probe_stop is None  # type: ignore[attr-defined]
    chosen = StrategySet.model_validate({"probe_stop": {"budgets_tokens": [64]}})
    assert [c.kind for c in chosen.configs()] == ["majority", "budget_forcing", "probe_stop"]


# --- through a real run: probe tokens are in the ledger's totals ------------------------------


def test_probe_tokens_are_in_the_ledgers_totals(tmp_path: Path) -> None:
    from ttscale.service import resolve_run, run_batch

    request = BatchRequest.model_validate(
        {
            "input_uri": str(files("ttscale") / "data" / "demo.jsonl"),
            "output_uri": f"file://{tmp_path}/out",
            "ledger_path": str(tmp_path / "ledger.duckdb"),
            "engine": {"kind": "scripted", "script": "settling", "accuracy": 1.0},
            "strategies": [{"kind": "probe_stop", "budgets_tokens": [64, 128], "probe_every": 16}],
            "max_items": 3,
            "run_id": "probe-stop",
        }
    )
    result = run_batch(resolve_run(request))
    assert result["units_added"] == 3 * 2
    con = open_ledger(result["ledger"])
    probe, every = con.execute(
        "SELECT sum(completion_tokens) FILTER (WHERE phase = 'probe'), sum(completion_tokens) "
        "FROM generation_calls WHERE run_id = 'probe-stop'"
    ).fetchone()
    assert probe > 0
    assert result["totals"]["completion_tokens"] == every
    (decided,) = con.execute(
        "SELECT sum(completion_tokens) FROM item_decisions WHERE run_id = 'probe-stop'"
    ).fetchone()
    assert decided == every
    stops = {row[0] for row in con.execute("SELECT stop_reason FROM item_decisions").fetchall()}
    assert stops <= {"probes_agreed", "cap", "model_stopped"}


# --- replay: a recorded probe history decides other settings without generation -----------------


@pytest.mark.parametrize(
    ("k", "every", "cap"), [(2, 16, 2000), (3, 8, 2000), (1, 24, 2000), (2, 16, 104), (2, 8, 96)]
)
@pytest.mark.parametrize("index", [0, 1, 2])
def test_a_recorded_history_replays_to_the_live_stop(
    k: int, every: int, cap: int, index: int
) -> None:
    # Recorded with a k no trace reaches: every probe up to the model's own end is kept.
    item = question(index)
    pool = run(_engine(), ProbeStopConfig(budgets_tokens=[4000], probe_every=8, k=64), 4000, item)
    assert pool["stop_reason"] == "model_stopped"
    live = run(_engine(), ProbeStopConfig(budgets_tokens=[cap], probe_every=every, k=k), cap, item)
    replayed = replay_probes(
        pool["detail"], pool["final_answer"], item.dataset, k=k, probe_every=every, cap=cap
    )
    assert str(replayed.stop_reason) == live["stop_reason"]
    assert replayed.final_answer == live["final_answer"]
    assert replayed.probes == len(live["detail"]["probe_positions"])
    if live["stop_reason"] != "model_stopped":  # the chunking decides a few tokens after the end
        assert replayed.thinking_tokens == live["detail"]["thinking_tokens"]
    # Its own settings replay to its own stop.
    again = replay_probes(
        live["detail"], live["final_answer"], item.dataset, k=k, probe_every=every, cap=cap
    )
    assert (str(again.stop_reason), again.final_answer) == (
        live["stop_reason"],
        live["final_answer"],
    )


def test_a_history_too_short_for_the_replay_is_refused() -> None:
    item = question()
    live = run(_engine(), ProbeStopConfig(budgets_tokens=[2000], probe_every=16, k=2), 2000, item)
    with pytest.raises(ValueError, match="stopped at"):
        replay_probes(live["detail"], None, item.dataset, k=3, probe_every=16, cap=2000)
    with pytest.raises(ValueError, match="multiple of 16"):
        replay_probes(live["detail"], None, item.dataset, k=2, probe_every=24, cap=2000)
    with pytest.raises(ValueError, match="no answer was recorded at the cap 20"):
        replay_probes(live["detail"], None, item.dataset, k=2, probe_every=16, cap=20)
