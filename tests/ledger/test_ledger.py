"""The ledger on a real DuckDB file: migrations, idempotent atomic ingest, exact token totals."""

from __future__ import annotations

import asyncio
import json
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import duckdb
import pytest

from ttscale.engines.config import ScriptedEngineConfig
from ttscale.engines.scripted import ScriptedEngine
from ttscale.errors import LedgerError
from ttscale.ledger import Ledger, staging
from ttscale.ledger import ledger as ledger_module
from ttscale.ledger.migrations import MIGRATIONS
from ttscale.ledger.staging import RunRow
from ttscale.prompts import PROFILES
from ttscale.runner import attempt_unit, expand_units
from ttscale.schemas import BadRow, Question
from ttscale.strategies.config import BudgetForcingConfig, MajorityConfig

QUESTIONS = [
    Question(id=f"q{i}", question=f"What is {i} plus 2?", answer=str(i + 2)) for i in range(3)
]


def _records(seed: int = 0) -> list[dict]:
    engine = ScriptedEngine(ScriptedEngineConfig(accuracy=0.5))
    units = expand_units([MajorityConfig(n=[1, 3]), BudgetForcingConfig(budgets_tokens=[16, 64])])

    async def go() -> list[dict]:
        results = await asyncio.gather(
            *(
                attempt_unit(engine, PROFILES["plain"], q, u, "r1", seed)
                for q in QUESTIONS
                for u in units
            )
        )
        return [result.to_json() for result in results]

    return asyncio.run(go())


def _open(tmp_path: Path) -> Ledger:
    ledger = Ledger(tmp_path / "ledger.duckdb")
    ledger.add_items("r1", QUESTIONS)
    return ledger


def test_migrations_apply_once(tmp_path: Path) -> None:
    with Ledger(tmp_path / "l.duckdb") as ledger:
        assert ledger.schema_version() == MIGRATIONS[-1].version
        assert ledger.migrate() == []  # nothing new the second time
    with Ledger(tmp_path / "l.duckdb") as ledger:
        _names, rows = ledger.query("SELECT name FROM schema_migrations ORDER BY version")
        assert [r[0] for r in rows] == [m.name for m in MIGRATIONS]


def test_ingest_is_idempotent_and_totals_equal_call_sums(tmp_path: Path) -> None:
    records = _records()
    with _open(tmp_path) as ledger:
        units, calls = ledger.ingest_units([("part-1", records)])
        assert units == len(records) == 12
        assert calls == sum(len(r["calls"]) for r in records)
        # The same records again, and again under another part name (a zombie worker): no change.
        assert ledger.ingest_units([("part-1", records)]) == (0, 0)
        assert ledger.ingest_units([("part-0", records)]) == (0, 0)
        _, rows = ledger.query(
            "SELECT count(*) FROM item_decisions d JOIN item_spend s "
            "USING (run_id, item_id, strategy, budget) "
            "WHERE d.completion_tokens <> s.completion_tokens OR d.prompt_tokens <> s.prompt_tokens "
            "OR d.thinking_tokens <> s.thinking_tokens OR d.calls <> s.calls"
        )
        assert rows[0][0] == 0
        _, rows = ledger.query("SELECT sum(completion_tokens) FROM generation_calls")
        assert rows[0][0] == sum(c["completion_tokens"] for r in records for c in r["calls"])


def test_duplicate_unit_in_one_ingest_counts_once(tmp_path: Path) -> None:
    records = _records()
    with _open(tmp_path) as ledger:
        units, calls = ledger.ingest_units([("part-b", records), ("part-a", records[:4])])
        assert units == 12 and calls == sum(len(r["calls"]) for r in records)


def test_a_unit_lands_whole_or_not_at_all(tmp_path: Path) -> None:
    records = _records()
    broken = dict(records[0]) | {"calls": [dict(c) for c in records[0]["calls"]]}
    broken["calls"][0]["thinking_tokens"] += 1  # violates completion = thinking + answer
    with _open(tmp_path) as ledger:
        with pytest.raises(LedgerError):
            ledger.ingest_units([("p", [*records[1:], broken])])
        _, rows = ledger.query("SELECT count(*) FROM generation_calls")
        assert rows[0][0] == 0


def test_cost_accuracy_view(tmp_path: Path) -> None:
    records = _records()
    with _open(tmp_path) as ledger:
        ledger.ingest_units([("p", records)])
        _, rows = ledger.query(
            "SELECT strategy, budget, items, accuracy, mean_completion_tokens, "
            "total_completion_tokens, mean_prompt_tokens "
            "FROM cost_accuracy ORDER BY strategy, budget"
        )
    # By hand from the ingested records: per (strategy, budget), the share of correct items and
    # the mean over items of each item's summed completion (and prompt) tokens over its calls.
    groups: dict[tuple[str, int], list[dict]] = {}
    for record in records:
        groups.setdefault((record["strategy"], record["budget"]), []).append(record)
    expected = []
    for (strategy, budget), group in sorted(groups.items()):
        completion = [sum(c["completion_tokens"] for c in r["calls"]) for r in group]
        prompt = [sum(c["prompt_tokens"] for c in r["calls"]) for r in group]
        right = sum(1 for r in group if r["correct"])
        expected.append(
            (strategy, budget, len(group), right / len(group), sum(completion) / len(group),
             sum(completion), sum(prompt) / len(group))
        )  # fmt: skip
    assert [(e[0], e[1], e[2]) for e in expected] == [
        ("budget_forcing", 16, 3), ("budget_forcing", 64, 3), ("majority", 1, 3), ("majority", 3, 3),
    ]  # fmt: skip
    # The scripted engine at accuracy 0.5 makes these differ between groups (not all 0 or 1).
    assert len({e[3] for e in expected}) > 1 and len({e[4] for e in expected}) == 4
    assert len(rows) == len(expected)
    for row, want in zip(rows, expected, strict=True):
        assert tuple(row[:3]) == want[:3]
        assert tuple(row[3:]) == pytest.approx(want[3:], rel=1e-9), want[:2]


def test_read_only_ledger(tmp_path: Path) -> None:
    with pytest.raises(LedgerError, match="no ledger"):
        Ledger(tmp_path / "missing.duckdb", read_only=True)
    Ledger(tmp_path / "l.duckdb").close()
    with Ledger(tmp_path / "l.duckdb", read_only=True) as ledger:
        with pytest.raises(LedgerError):
            ledger.query("DELETE FROM runs")
        with pytest.raises(duckdb.Error):
            ledger.con.execute("CREATE TABLE x (a INT)")


# --- Bulk ingest of a whole run: one transaction, idempotent, readers see all of it or none. ---

RUN_TABLES = ("runs", "items", "input_errors", "item_decisions", "generation_calls")
BAD_ROWS = [
    BadRow(object="in.jsonl", line=4, field="question", reason="missing"),
    BadRow(object="in.jsonl", line=9, field=None, reason="not JSON"),
]


def _run(run_id: str = "r1") -> RunRow:
    return RunRow(
        run_id=run_id,
        fingerprint="f" * 16,
        engine="scripted",
        engine_kind="scripted",
        seed=0,
        request={"input_uri": "in.jsonl"},
        versions={"ttscale": "test"},
        prompts={"profile": "plain"},
        flow_run_id="flow-1",
    )


def _jsonl(records: list[dict]) -> bytes:
    """A part object's bytes, as PartWriter writes them."""
    return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records).encode()


def _table_counts(ledger: Ledger, run_id: str = "r1") -> dict[str, int]:
    counts = {}
    for table in RUN_TABLES:
        _, rows = ledger.query(f"SELECT count(*) FROM {table} WHERE run_id = ?", [run_id])
        counts[table] = rows[0][0]
    return counts


def _expected_counts(records: list[dict]) -> dict[str, int]:
    return {
        "runs": 1,
        "items": len(QUESTIONS),
        "input_errors": len(BAD_ROWS),
        "item_decisions": len(records),
        "generation_calls": sum(len(r["calls"]) for r in records),
    }


def test_ingest_run_is_whole_and_idempotent(tmp_path: Path) -> None:
    records = _records()
    parts: list[tuple[str, Any]] = [("part-1", _jsonl(records[:5])), ("part-2", records[5:])]
    with Ledger(tmp_path / "ledger.duckdb") as ledger:
        added = ledger.ingest_run(_run(), QUESTIONS, BAD_ROWS, parts)
        assert added == (len(records), sum(len(r["calls"]) for r in records))
        assert _table_counts(ledger) == _expected_counts(records)
        _, rows = ledger.query("SELECT status, flow_run_id, started_at FROM runs")
        assert rows == [("ingested", "flow-1", None)]
        _, rows = ledger.query("SELECT DISTINCT json_type(detail_json) FROM item_decisions")
        assert rows == [("OBJECT",)]  # the record's detail object itself, encoded once
        # Again, and again with every record in one part: nothing new, nothing doubled.
        assert ledger.ingest_run(_run(), QUESTIONS, BAD_ROWS, parts) == (0, 0)
        assert ledger.ingest_run(_run(), QUESTIONS, BAD_ROWS, [("p", _jsonl(records))]) == (0, 0)
        assert _table_counts(ledger) == _expected_counts(records)
        ledger.finish_run("r1", "completed")
        _, rows = ledger.query("SELECT status, items, units FROM run_summary")
        assert rows == [("completed", len(QUESTIONS), len(records))]


def test_ingest_run_adds_only_the_missing_units(tmp_path: Path) -> None:
    records = _records()
    with Ledger(tmp_path / "ledger.duckdb") as ledger:
        ledger.ingest_run(_run(), QUESTIONS, BAD_ROWS, [("part-1", _jsonl(records[:7]))])
        added = ledger.ingest_run(_run(), QUESTIONS, BAD_ROWS, [("part-1", _jsonl(records))])
        assert added == (5, sum(len(r["calls"]) for r in records[7:]))
        assert _table_counts(ledger) == _expected_counts(records)


def test_unit_written_twice_in_different_parts_is_taken_once_from_the_first_part(
    tmp_path: Path,
) -> None:
    records = _records()
    zombie = [dict(r) | {"final_answer": "zombie"} for r in records[:4]]
    with Ledger(tmp_path / "ledger.duckdb") as ledger:
        added = ledger.ingest_run(
            _run(), QUESTIONS, [], [("part-b", _jsonl(zombie)), ("part-a", _jsonl(records))]
        )
        assert added == (len(records), sum(len(r["calls"]) for r in records))
        _, rows = ledger.query("SELECT count(*) FROM item_decisions WHERE final_answer = 'zombie'")
        assert rows[0][0] == 0  # min(source): part-a's copy
        _, rows = ledger.query(
            "SELECT count(*) FROM (SELECT run_id, item_id, strategy, budget, sample_index, "
            "call_index FROM generation_calls GROUP BY ALL HAVING count(*) > 1)"
        )
        assert rows[0][0] == 0


def test_ingest_run_decision_totals_are_sums_of_their_calls(tmp_path: Path) -> None:
    records = _records()
    # A record's own say-so is never used: its totals come from its call rows.
    lying = [dict(r) | {"completion_tokens": 10**6, "calls_count": 99} for r in records]
    with Ledger(tmp_path / "ledger.duckdb") as ledger:
        ledger.ingest_run(_run(), QUESTIONS, [], [("p", _jsonl(lying))])
        _, rows = ledger.query(
            "SELECT count(*) FROM item_decisions d JOIN item_spend s "
            "USING (run_id, item_id, strategy, budget) "
            "WHERE d.completion_tokens <> s.completion_tokens OR d.prompt_tokens <> s.prompt_tokens "
            "OR d.thinking_tokens <> s.thinking_tokens OR d.answer_tokens <> s.answer_tokens "
            "OR d.calls <> s.calls"
        )
        assert rows[0][0] == 0
        for record in records:
            _, rows = ledger.query(
                "SELECT calls, prompt_tokens, completion_tokens, thinking_tokens, answer_tokens "
                "FROM item_decisions WHERE item_id = ? AND strategy = ? AND budget = ?",
                [record["item_id"], record["strategy"], record["budget"]],
            )
            calls = record["calls"]
            assert rows[0] == (
                len(calls),
                *(sum(c[k] for c in calls) for k in ("prompt_tokens", "completion_tokens")),
                *(sum(c[k] for c in calls) for k in ("thinking_tokens", "answer_tokens")),
            )
        # A unit that made no calls (it failed at once) has zero totals, not NULL.
        failed = dict(records[0]) | {"item_id": "q0", "budget": 99, "calls": [], "error": "boom"}
        assert ledger.ingest_units([("p2", [failed])]) == (1, 0)
        _, rows = ledger.query(
            "SELECT calls, completion_tokens FROM item_decisions WHERE budget = 99"
        )
        assert rows == [(0, 0)]


def test_failed_ingest_leaves_nothing_of_the_run_and_a_rerun_lands_it_whole(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    records = _records()
    broken = dict(records[-1]) | {"calls": [dict(c) for c in records[-1]["calls"]]}
    broken["calls"][-1]["thinking_tokens"] += 1  # violates completion = thinking + answer
    staging = tmp_path / "staging"
    staging.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(staging))
    with Ledger(tmp_path / "ledger.duckdb") as ledger:
        parts = [("part-1", _jsonl(records[:6])), ("part-2", _jsonl([*records[6:-1], broken]))]
        with pytest.raises(LedgerError, match="ingest failed"):
            ledger.ingest_run(_run(), QUESTIONS, BAD_ROWS, parts)
        assert _table_counts(ledger) == dict.fromkeys(RUN_TABLES, 0)
        assert list(staging.iterdir()) == []  # the staging files are gone, also on error
        good = [("part-1", _jsonl(records[:6])), ("part-2", _jsonl(records[6:]))]
        assert ledger.ingest_run(_run(), QUESTIONS, BAD_ROWS, good) == (
            len(records),
            sum(len(r["calls"]) for r in records),
        )
        assert _table_counts(ledger) == _expected_counts(records)
        assert list(staging.iterdir()) == []


def test_failure_after_every_insert_rolls_back_the_whole_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    records = _records()
    # Fail as the last statement of the transaction, after the calls and decisions are inserted.
    monkeypatch.setattr(
        ledger_module,
        "INGEST_CLEANUP_SQL",
        (*ledger_module.INGEST_CLEANUP_SQL, "SELECT error('killed mid-ingest')"),
    )
    with Ledger(tmp_path / "ledger.duckdb") as ledger:
        with pytest.raises(LedgerError, match="killed mid-ingest"):
            ledger.ingest_run(_run(), QUESTIONS, BAD_ROWS, [("p", _jsonl(records))])
        assert _table_counts(ledger) == dict.fromkeys(RUN_TABLES, 0)
        monkeypatch.undo()
        ledger.ingest_run(_run(), QUESTIONS, BAD_ROWS, [("p", _jsonl(records))])
        assert _table_counts(ledger) == _expected_counts(records)


def test_failure_reading_the_parts_writes_nothing(tmp_path: Path) -> None:
    records = _records()

    def parts() -> Iterator[tuple[str, bytes]]:
        yield "part-1", _jsonl(records[:6])
        raise OSError("store went away")

    with Ledger(tmp_path / "ledger.duckdb") as ledger:
        with pytest.raises(OSError, match="store went away"):
            ledger.ingest_run(_run(), QUESTIONS, BAD_ROWS, parts())
        assert _table_counts(ledger) == dict.fromkeys(RUN_TABLES, 0)


def test_readers_see_none_of_a_run_until_it_commits(tmp_path: Path) -> None:
    records = _records()
    seen = []

    class Spy:
        """The ledger's connection, peeking through a second connection after the inserts."""

        def __init__(self, con: duckdb.DuckDBPyConnection) -> None:
            self.con = con

        def execute(self, sql: str, *args: Any) -> Any:
            result = self.con.execute(sql, *args)
            if sql.startswith("INSERT INTO item_decisions"):
                reader = self.con.cursor()
                reader.execute("USE lake")  # a cursor starts on the in-memory database
                seen.append(
                    reader.execute(
                        "SELECT " + ", ".join(f"(SELECT count(*) FROM {t})" for t in RUN_TABLES)
                    ).fetchone()
                )
                reader.close()
            return result

        def __getattr__(self, name: str) -> Any:
            return getattr(self.con, name)

    with Ledger(tmp_path / "ledger.duckdb") as ledger:
        ledger.con = Spy(ledger.con)  # type: ignore[assignment]
        ledger.ingest_run(_run(), QUESTIONS, BAD_ROWS, [("p", _jsonl(records))])
        assert seen == [(0, 0, 0, 0, 0)]
        assert _table_counts(ledger) == _expected_counts(records)


def test_add_items_and_input_errors_are_bulk_and_idempotent(tmp_path: Path) -> None:
    questions = [*QUESTIONS, Question(id="q0", question="A second q0", answer="0")]
    with Ledger(tmp_path / "ledger.duckdb") as ledger:
        ledger.add_items("r1", questions)
        ledger.add_items("r1", questions)
        ledger.add_input_errors("r1", [*BAD_ROWS, BAD_ROWS[0]])
        ledger.add_input_errors("r1", BAD_ROWS)
        _, rows = ledger.query("SELECT item_id, question FROM items ORDER BY item_id")
        assert rows == [(q.id, q.question) for q in QUESTIONS]  # the first q0 is kept
        _, rows = ledger.query("SELECT object, line, field, reason FROM input_errors ORDER BY line")
        assert rows == [(b.object, b.line, b.field, b.reason) for b in BAD_ROWS]
        _, rows = ledger.query("SELECT metadata_json FROM items LIMIT 1")
        assert json.loads(rows[0][0]) == {}


def test_a_successful_retry_supersedes_the_errored_attempt(tmp_path: Path) -> None:
    records = _records()
    errored = [
        dict(r)
        | {"final_answer": None, "correct": False, "stop_reason": "error", "error": "outage"}
        | {"calls": r["calls"][:1], "error_retryable": True}
        for r in records[:3]
    ]
    with Ledger(tmp_path / "ledger.duckdb") as ledger:
        # The errored attempt's part sorts first; the retry's success still wins.
        added = ledger.ingest_run(
            _run(), QUESTIONS, [], [("part-0", _jsonl(errored)), ("part-1", _jsonl(records))]
        )
        assert added == (len(records), sum(len(r["calls"]) for r in records))
        _, rows = ledger.query("SELECT count(*) FROM item_decisions WHERE error IS NOT NULL")
        assert rows[0][0] == 0
        # A unit with only errored attempts is ingested as errored (its calls still count).
        ledger.ingest_units([("part-2", [dict(errored[0]) | {"budget": 7}])])
        _, rows = ledger.query("SELECT stop_reason, calls FROM item_decisions WHERE budget = 7")
        assert rows == [("error", 1)]


@pytest.mark.parametrize("batch_bytes", [1, 10**9])
def test_an_ingest_in_batches_chooses_as_one_scan_does(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, batch_bytes: int
) -> None:
    """Every part its own batch (1 byte) or all in one: the same units, calls and totals."""
    monkeypatch.setattr(staging, "INGEST_BATCH_BYTES", batch_bytes)
    records = _records()
    zombie = [dict(r) | {"final_answer": "zombie"} for r in records[:4]]
    errored = dict(records[5]) | {"stop_reason": "error", "error": "EngineError: gone", "calls": []}
    # Records as another writer may lay them out: indented, a blank line, no final newline.
    loose = b"\n".join(b"  " + json.dumps(r).encode() for r in records[8:10])
    loose += b"\n\n" + json.dumps(records[10]).encode() + b"\n" + json.dumps(records[11]).encode()
    # Parts as a local store gives them: files read in place, one whose name DuckDB would glob.
    (tmp_path / "store").mkdir()
    in_place, globbed = tmp_path / "store" / "part-b", tmp_path / "store" / "part-[c]*"
    in_place.write_bytes(_jsonl(records[5:7]))
    globbed.write_bytes(loose)
    parts: list[tuple[str, Any]] = [
        ("part-d", _jsonl(zombie)),  # a zombie's later copy, given first: part-a's must win
        ("part-a", _jsonl([errored, *records[:5]])),  # an errored attempt, healed by part-b
        ("part-b", in_place),
        ("part-c", globbed),
        ("part-e", b"\n  \n"),  # nothing in it
        ("part-f", records[7:8]),  # records, not bytes
    ]
    with Ledger(tmp_path / "ledger.duckdb") as ledger:
        added = ledger.ingest_run(_run(), QUESTIONS, [], parts)
        calls = sum(len(r["calls"]) for r in records)
        assert added == (len(records), calls)
        _, rows = ledger.query(
            "SELECT count(*) FILTER (WHERE final_answer = 'zombie'), "
            "count(*) FILTER (WHERE stop_reason = 'error'), count(*) FROM item_decisions"
        )
        assert rows == [(0, 0, len(records))]
        _, rows = ledger.query("SELECT count(*), sum(completion_tokens) FROM generation_calls")
        assert rows == [(calls, sum(c["completion_tokens"] for r in records for c in r["calls"]))]
        # Every line of every part was generated once, the zombie's copies included.
        assert ledger.generation_totals["calls"] == calls + sum(len(r["calls"]) for r in zombie)
        assert ledger.ingest_run(_run(), QUESTIONS, [], parts) == (0, 0)


def test_parts_are_staged_whole_newline_terminated_and_in_key_order(tmp_path: Path) -> None:
    records = _records()
    local = tmp_path / "part-1"  # a local store's object: copied by the kernel, as it is
    local.write_bytes(_jsonl(records[:2]).rstrip(b"\n"))  # no final newline
    parts: list[staging.Part] = [
        ("k/part-2", _jsonl(records[2:4])),
        ("k/part-1", local),
        ("k/part-3", records[4:6]),
        ("k/part-4", b" \n"),  # nothing in it: not staged
        ("k/part-5", tmp_path / "empty"),
    ]
    (tmp_path / "empty").touch()
    (tmp_path / "one").mkdir()
    (tmp_path / "each").mkdir()
    batches = staging.stage_parts(tmp_path / "one", parts, batch_bytes=10**9)
    assert len(batches) == 1
    assert [source for source, _ in batches[0].parts] == ["k/part-1", "k/part-2", "k/part-3"]
    with batches[0].opened() as staged:
        lines = staged.file.read_bytes().splitlines()  # a pipe, fed as it is read
    assert [json.loads(line) for line in lines] == json.loads(json.dumps(records[:6]))
    # Fed for its read only: gone once read (the bytes parts' spill file stays until the
    # ingest ends), fed the same again when opened again.
    assert [f.name for f in (tmp_path / "one").iterdir()] == ["spill-00000.jsonl"]
    with batches[0].opened() as again:
        assert again.file.read_bytes().splitlines() == lines
    # In batches of about a part each, still in key order, each newline-terminated.
    each = staging.stage_parts(tmp_path / "each", parts, batch_bytes=1)
    assert [[s for s, _ in b.parts] for b in each] == [["k/part-1"], ["k/part-2"], ["k/part-3"]]
    for batch, part in zip(each, (records[:2], records[2:4], records[4:6]), strict=True):
        with batch.opened() as staged:
            data = staged.file.read_bytes()
        assert data.endswith(b"\n")
        assert [json.loads(line) for line in data.splitlines()] == json.loads(json.dumps(part))


def test_read_ahead_hands_out_every_batch_in_order_even_when_a_file_is_gone(
    tmp_path: Path,
) -> None:
    records = _records()
    files = []
    for n in range(3):
        files.append(tmp_path / f"part-{n}")
        files[-1].write_bytes(_jsonl(records[2 * n : 2 * n + 2]))
    (tmp_path / "x").mkdir()
    parts: list[staging.Part] = [(f"k/part-{n}", f) for n, f in enumerate(files)]
    batches = staging.stage_parts(tmp_path / "x", parts, batch_bytes=1)
    files[1].unlink()  # the hint is only a hint: a missing file is the feeder's to report
    assert list(staging.read_ahead(batches)) == batches
    with batches[2].opened() as staged:
        assert staged.file.read_bytes() == _jsonl(records[4:6])


def test_a_batch_whose_reader_fails_or_reads_nothing_leaves_no_feeder_waiting(
    tmp_path: Path,
) -> None:
    part = tmp_path / "part-1"
    part.write_bytes(_jsonl(_records()) * 2000)  # more than a pipe holds
    (tmp_path / "x").mkdir()
    (batch,) = staging.stage_parts(tmp_path / "x", [("k/part-1", part)], batch_bytes=10**12)
    for read in (0, 1000):
        with pytest.raises(RuntimeError, match="the reader failed"), batch.opened() as staged:
            if read:
                with staged.file.open("rb") as pipe:
                    assert len(pipe.read(read)) == read
            raise RuntimeError("the reader failed")
        assert not [t for t in threading.enumerate() if t.name.startswith("ttscale-staging")]
    # A reader that stops early without failing fails the read: parts were left unread.
    stopped = pytest.raises(OSError, match=r"unread|staging the parts failed")
    with stopped, batch.opened() as staged, staged.file.open("rb") as pipe:
        assert len(pipe.read(1000)) == 1000
    # A feeder that fails makes the read fail, though the reader saw the pipe end.
    part.unlink()
    with pytest.raises(OSError, match="staging the parts failed"), batch.opened() as staged:
        assert staged.file.read_bytes() == b""
    assert list((tmp_path / "x").iterdir()) == []


def test_parts_given_as_bytes_in_key_order_are_read_where_they_were_spilled(
    tmp_path: Path,
) -> None:
    records = _records()
    parts: list[staging.Part] = [("k/part-1", _jsonl(records[:3])), ("k/part-2", records[3:6])]
    (batch,) = staging.stage_parts(tmp_path, parts, batch_bytes=10**9)
    assert batch.in_place
    with batch.opened() as staged:
        assert [json.loads(x) for x in staged.file.read_bytes().splitlines()] == json.loads(
            json.dumps(records[:6])
        )
    assert staged.file.exists()  # the spill file itself, removed with the ingest's directory
    # Out of order, they are copied into a batch in key order like any other part.
    (tmp_path / "x").mkdir()
    (batch,) = staging.stage_parts(tmp_path / "x", parts[::-1], batch_bytes=10**9)
    assert not batch.in_place


def test_a_part_that_is_not_unit_records_fails_the_ingest_naming_it(tmp_path: Path) -> None:
    records = _records()
    parts: list[tuple[str, Any]] = [
        ("runs/r/part-1", _jsonl(records[:2])),
        ("runs/r/part-2", _jsonl(records[2:4]) + b"[1]\n"),
    ]
    with Ledger(tmp_path / "ledger.sqlite") as ledger:
        with pytest.raises(LedgerError, match=r'"runs/r/part-2", in line 3') as raised:
            ledger.ingest_run(_run(), QUESTIONS, [], parts)
        assert "nothing was written" in str(raised.value)
        assert str(tmp_path) not in str(raised.value)  # the object, not a temporary copy
        _, rows = ledger.query("SELECT count(*) FROM item_decisions")
        assert rows == [(0,)]
        _, rows = ledger.query("SELECT count(*) FROM runs")
        assert rows == [(0,)]


def test_items_read_from_shard_inputs_equal_items_given_as_questions(tmp_path: Path) -> None:
    """A run's shard input objects, as plan_batch writes them, are read by DuckDB as they are."""
    questions = [
        *QUESTIONS,
        Question(id="q-meta", question="¿Cuánto es 2+2?", answer="4", language="es",
                 dataset="mgsm", metadata={"source": "mgsm", "n": [1, 2]}),
    ]  # fmt: skip
    shard_file = tmp_path / "shard-1.jsonl"
    shard_file.write_bytes(_jsonl([q.model_dump() for q in questions[:2]]))
    inputs: list[tuple[str, Any]] = [
        ("runs/r/shard-1/input.jsonl", shard_file),  # a local store's object, read in place
        ("runs/r/shard-2/input.jsonl", _jsonl([q.model_dump() for q in questions[2:]])),
    ]
    items = "SELECT item_id, dataset, language, question, gold, metadata_json FROM items"
    with Ledger(tmp_path / "given.sqlite") as given, Ledger(tmp_path / "read.sqlite") as read:
        given.ingest_run(_run(), questions, [], [])
        read.ingest_run(_run(), (), [], [], question_parts=inputs)
        _, expected = given.query(f"{items} ORDER BY item_id")
        _, rows = read.query(f"{items} ORDER BY item_id")
        assert len(rows) == len(questions)
        for row, want in zip(rows, expected, strict=True):
            assert row[:5] == want[:5]
            assert json.loads(row[5]) == json.loads(want[5])
        # Again: nothing added twice.
        read.ingest_run(_run(), (), [], [], question_parts=inputs)
        assert read.query("SELECT count(*) FROM items")[1] == [(len(questions),)]
        # A shard input that is not questions fails the ingest, naming the object.
        bad: list[tuple[str, Any]] = [("runs/r2/shard-1/input.jsonl", b'{"id": "x"}\n"q"\n')]
        with pytest.raises(LedgerError, match=r'"runs/r2/shard-1/input.jsonl", in line 2'):
            read.ingest_run(_run("r2"), (), [], [], question_parts=bad)
        assert read.query("SELECT count(*) FROM runs WHERE run_id = 'r2'")[1] == [(0,)]
