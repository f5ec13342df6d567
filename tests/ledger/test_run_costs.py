"""A run's two costs in the ledger: tokens attributed to its units and tokens generated.

A sweep runs as a shard does (every unit of every item at once, one sample cache), on a scripted
engine that counts what it produced; the records are ingested into a real lake. The ledger's
``tokens_generated`` must equal what the engine produced, and ``tokens_attributed`` the units'
own sums; without the cache the two are equal.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ttscale.engines.base import Generation, SamplingSpec
from ttscale.engines.config import ScriptedEngineConfig
from ttscale.engines.scripted import ScriptedEngine
from ttscale.ledger import Ledger
from ttscale.ledger.report_data import build_report_from_ledger
from ttscale.ledger.staging import RunRow
from ttscale.prompts import PROFILES
from ttscale.records import UnitResult
from ttscale.reports.html import render_html
from ttscale.reports.markdown import render_markdown
from ttscale.runner import expand_units, run_shard_units
from ttscale.schemas import Question
from ttscale.strategies.config import BudgetForcingConfig, MajorityConfig
from ttscale.strategies.sample_cache import SampleCache

QUESTIONS = [
    Question(id=f"q{i}", question=f"What is {i} plus {i + 3}?", answer=str(2 * i + 3))
    for i in range(5)
]
SWEEP = [MajorityConfig(n=[1, 2, 4, 8]), BudgetForcingConfig(budgets_tokens=[16, 32, 64])]


class ProducingEngine(ScriptedEngine):
    """The scripted engine, counting every completion token it generated."""

    def __init__(self) -> None:
        super().__init__(ScriptedEngineConfig(accuracy=0.6))
        self.produced_tokens = 0

    async def generate(self, prompt_ids: Sequence[int], spec: SamplingSpec) -> Generation:
        generation = await super().generate(prompt_ids, spec)
        self.produced_tokens += sum(c.num_tokens for c in generation.completions)
        return generation


class Sink:
    def __init__(self) -> None:
        self.results: list[UnitResult] = []

    def add(self, result: UnitResult) -> None:
        self.results.append(result)

    def flush(self) -> None:
        return None


def _sweep(cache: SampleCache | None) -> tuple[list[dict[str, Any]], int]:
    engine, sink = ProducingEngine(), Sink()
    asyncio.run(
        run_shard_units(
            engine,
            PROFILES["plain"],
            QUESTIONS,
            expand_units(SWEEP),
            run_id="costs",
            run_seed=3,
            skip=set(),
            writer=sink,
            cache=cache,
        )
    )
    return [r.to_json() for r in sink.results], engine.produced_tokens


def _run_row(model: str | None = "org/model-7b") -> RunRow:
    return RunRow(
        run_id="costs",
        fingerprint="f" * 16,
        engine="scripted:arithmetic",
        engine_kind="scripted",
        seed=3,
        request={},
        versions={},
        prompts={},
        model=model,
    )


def _ingest(tmp_path: Path, records: list[dict[str, Any]]) -> Ledger:
    part = "".join(json.dumps(r) + "\n" for r in records).encode()
    ledger = Ledger(tmp_path / "ledger.sqlite")
    ledger.ingest_run(_run_row(), QUESTIONS, [], [("part-0", part)])
    return ledger


def test_tokens_generated_is_what_the_engine_produced_and_attributed_what_units_count(
    tmp_path: Path,
) -> None:
    records, produced = _sweep(SampleCache())
    attributed = sum(c["completion_tokens"] for r in records for c in r["calls"])
    with _ingest(tmp_path, records) as ledger:
        _, rows = ledger.query(
            "SELECT model, tokens_attributed, tokens_generated, sweep_saving FROM run_summary"
        )
        ((model, ledger_attributed, generated, saving),) = rows
        assert model == "org/model-7b"
        assert ledger_attributed == attributed
        assert generated == produced < attributed
        assert saving == attributed / produced
        # Cached calls are marked, and a budget served as a cut of a longer request is cached
        # yet may carry that request's tokens: summing only the uncached calls would be wrong.
        _, rows = ledger.query(
            "SELECT count(*) FILTER (WHERE cached), "
            "sum(generated_tokens) FILTER (WHERE NOT cached), "
            "count(*) FILTER (WHERE cached AND generated_tokens > 0) FROM generation_calls"
        )
        ((cached_calls, uncached_sum, cached_paying),) = rows
        assert cached_calls > 0
        assert cached_paying > 0 and uncached_sum < produced


def test_without_the_cache_both_costs_are_equal(tmp_path: Path) -> None:
    records, produced = _sweep(None)
    with _ingest(tmp_path, records) as ledger:
        _, rows = ledger.query("SELECT tokens_attributed, tokens_generated FROM runs")
        assert rows == [(produced, produced)]


def test_costs_are_set_again_when_more_units_arrive_and_at_finish(tmp_path: Path) -> None:
    records, produced = _sweep(SampleCache())
    first, rest = records[: len(records) // 2], records[len(records) // 2 :]
    with _ingest(tmp_path, first) as ledger:
        _, before = ledger.query("SELECT tokens_generated FROM runs")
        ledger.ingest_units([("part-1", rest)])
        _, after = ledger.query("SELECT tokens_generated FROM runs")
        assert before[0][0] < after[0][0] == produced
        ledger.con.execute("UPDATE runs SET tokens_generated = NULL, tokens_attributed = NULL")
        ledger.finish_run("costs", "completed")
        _, rows = ledger.query("SELECT status, tokens_generated FROM runs")
        assert rows == [("completed", produced)]


def test_detail_json_is_json_that_paths_read(tmp_path: Path) -> None:
    records, _ = _sweep(SampleCache())
    with _ingest(tmp_path, records) as ledger:
        _, rows = ledger.query(
            "SELECT item_id, budget, detail_json->>'$.votes', json_type(detail_json) "
            "FROM item_decisions WHERE strategy = 'majority' ORDER BY item_id, budget"
        )
        expected = {
            (r["item_id"], r["budget"]): r["detail"]["votes"]
            for r in records
            if r["strategy"] == "majority"
        }
        assert len(rows) == len(expected)
        for item_id, budget, votes, kind in rows:
            assert kind == "OBJECT"  # not a string holding JSON
            assert json.loads(votes) == expected[(item_id, budget)]


def test_the_report_states_the_sweep_saving(tmp_path: Path) -> None:
    records, produced = _sweep(SampleCache())
    attributed = sum(c["completion_tokens"] for r in records for c in r["calls"])
    with _ingest(tmp_path, records) as ledger:
        report = build_report_from_ledger(ledger.con, "costs")
    assert report.totals.generated_tokens == produced
    assert report.totals.completion_tokens == attributed
    line = f"{attributed:,} completion tokens attributed to units, {produced:,} generated"
    ratio = f"{attributed / produced:.2f}×"
    markdown, html = render_markdown(report), render_html(report)
    assert f"- sweep saving: {line}: {ratio}" in markdown
    assert line in html and ratio in html


def test_the_ingest_counts_what_every_part_line_generated_superseded_attempts_included(
    tmp_path: Path,
) -> None:
    # The "generated:" line of `ttscale run`: every line of every part counts, so a unit written
    # twice (a zombie worker's copy) counts twice, although the ledger keeps it once.
    records, produced = _sweep(SampleCache())
    lines = [*records, records[0]]
    calls = sum(len(r["calls"]) for r in lines)
    cached = sum(bool(c.get("cached")) for r in lines for c in r["calls"])
    again = sum(
        c["completion_tokens"] if c.get("generated_tokens") is None else c["generated_tokens"]
        for c in records[0]["calls"]
    )
    with _ingest(tmp_path, lines) as ledger:
        assert ledger.generation_totals == {
            "calls": calls,
            "calls_cached": cached,
            "tokens_generated": produced + again,
        }
        assert 0 < cached < calls and again > 0
        _, rows = ledger.query("SELECT tokens_generated FROM runs")
        assert rows == [(produced,)]
