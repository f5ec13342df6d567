"""Time the ledger ingest of a run of N items × 5 units (default 50,000) the way the flow does it.

Synthetic unit records (the shape ``UnitResult.to_json`` writes: a decision plus 1–8 call rows) are
written as shard part objects to a local output store, with a few parts written twice by a
"zombie" worker. Then, side by side in one run:

- ``batch.ingest``: the flow's step (reads the store, one transaction for the whole run);
- the same again (idempotent: adds nothing);
- a raw DuckDB bulk load of the same rows, already flattened, into an empty ledger lake
  (``INSERT INTO <table> SELECT * FROM read_json(...)`` per table, one transaction): the floor;
- a raw DuckDB parse of the same part bytes (``read_json`` of them concatenated into a table).

    .venv/bin/python bench/bench_ingest.py --items 50000
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb

from ttscale.ledger import Ledger
from ttscale.ledger.lake import connect_lake
from ttscale.ledger.staging import CALL_FIELDS, UNIT_FIELDS
from ttscale.schemas import BatchRequest
from ttscale.service import BatchPlan, ShardLayout, ingest, resolve_run

# (strategy, budget, calls): 1, 4 and 8 samples; thinking + answer, thinking + extension + answer.
UNITS = (
    ("majority", 1, 1),
    ("majority", 4, 4),
    ("majority", 8, 8),
    ("budget_forcing", 512, 2),
    ("budget_forcing", 2048, 3),
)
SHARD_SIZE = 64
PART_UNITS = 32  # PartWriter's every_units
TOKENS = ("prompt_tokens", "completion_tokens", "thinking_tokens", "answer_tokens")
WORDS = ("let", "me", "think", "step", "by", "carry", "the", "one", "so", "add", "them", "check")


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def unit_record(
    run_id: str, item: int, unit: tuple[str, int, int], text_chars: int, rng: random.Random
) -> dict[str, Any]:
    strategy, budget, n_calls = unit
    answer = str(item % 97)
    calls = []
    for i in range(n_calls):
        sample, call = (i, 0) if strategy == "majority" else (0, i)
        if strategy == "majority":
            phase = "sample"
        else:
            phase = "answer" if i == n_calls - 1 else ("thinking" if i == 0 else "extension")
        thinking, answer_tokens = rng.randrange(0, budget * 4 // 5 + 1), rng.randrange(1, 40)
        words = " ".join(rng.choices(WORDS, k=max(1, text_chars // 5)))
        calls.append(
            {
                "sample_index": sample,
                "call_index": call,
                "phase": phase,
                "prompt_tokens": rng.randrange(60, 240),
                "completion_tokens": thinking + answer_tokens,
                "thinking_tokens": thinking,
                "answer_tokens": answer_tokens,
                "finish_reason": "stop" if rng.random() < 0.9 else "length",
                "stop_reason": None,
                "latency_s": rng.random() * 3,
                "used": not (strategy == "majority" and i == n_calls - 1 and n_calls > 1),
                "seed": rng.randrange(2**31),
                "cumulative_logprob": -rng.random() * 40,
                "score": None,
                "extracted_answer": answer,
                "completion_text": f"{words[:text_chars]}\nFinal Answer: {answer}",
            }
        )
    detail: dict[str, Any] = (
        {"votes": {answer: n_calls}}
        if strategy == "majority"
        else {"thinking_tokens": budget, "extensions": n_calls - 2, "budget": budget}
    )
    return {
        "run_id": run_id,
        "item_id": f"q{item:06d}",
        "strategy": strategy,
        "budget": budget,
        "final_answer": answer,
        "correct": rng.random() < 0.6,
        "stop_reason": "budget_reached",
        "samples_used": len({c["sample_index"] for c in calls}),
        "answered_language": "en",
        "detail": detail,
        "error": None,
        "calls": calls,
    }


def jsonl(rows: list[dict[str, Any]]) -> bytes:
    """As PartWriter writes a part object."""
    return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows).encode()


def write_run(
    root: Path, run_id: str, items: int, text_chars: int, zombie_every: int, flat: Path
) -> tuple[BatchPlan, int, int, int]:
    """Lay out a finished run under ``root`` and its flattened rows under ``flat``.

    Returns the plan, the parts written, the unique units and their calls.
    """
    rng = random.Random(1)
    prefix = f"runs/{run_id}"
    (root / prefix).mkdir(parents=True)
    bad = [
        {"object": "in.jsonl", "line": i, "field": "answer", "reason": "missing"} for i in range(25)
    ]
    (root / prefix / "errors.jsonl").write_bytes(jsonl(bad))
    shard_prefixes, n_parts, n_units, n_calls = [], 0, 0, 0
    flat.mkdir()
    with (
        (flat / "items.jsonl").open("wb") as items_out,
        (flat / "decisions.jsonl").open("wb") as decisions_out,
        (flat / "calls.jsonl").open("wb") as calls_out,
        (flat / "parts.jsonl").open("wb") as parts_out,
    ):
        for shard, start in enumerate(range(0, items, SHARD_SIZE)):
            shard_prefix = f"{prefix}/shards/{shard:05d}"
            shard_dir = root / shard_prefix
            shard_dir.mkdir(parents=True)
            questions = [
                {"id": f"q{i:06d}", "question": f"What is {i} plus 2?", "answer": str(i + 2),
                 "language": "en", "dataset": "gsm8k", "metadata": {"row": i}}
                for i in range(start, min(start + SHARD_SIZE, items))
            ]  # fmt: skip
            (shard_dir / "input.jsonl").write_bytes(jsonl(questions))
            items_out.write(
                jsonl(
                    [{"run_id": run_id, "item_id": q["id"], "dataset": q["dataset"],
                      "language": q["language"], "question": q["question"], "gold": q["answer"],
                      "metadata_json": json.dumps(q["metadata"])} for q in questions]
                )
            )  # fmt: skip
            records = [
                unit_record(run_id, start + i, unit, text_chars, rng)
                for i in range(len(questions))
                for unit in UNITS
            ]
            for k in range(0, len(records), PART_UNITS):
                data = jsonl(records[k : k + PART_UNITS])
                (shard_dir / f"part-{k:020d}-bench.jsonl").write_bytes(data)
                parts_out.write(data)
                n_parts += 1
                if zombie_every and n_parts % zombie_every == 0:  # a zombie worker's copy
                    (shard_dir / f"part-{k:020d}-zombie.jsonl").write_bytes(data)
                    n_parts += 1
            (shard_dir / "done.json").write_text(
                json.dumps({"engine": "scripted:bench", "versions": {}, "profile": {}})
            )
            shard_prefixes.append(shard_prefix)
            for r in records:
                n_units += 1
                n_calls += len(r["calls"])
                key = {k: r[k] for k in ("run_id", "item_id", "strategy", "budget")}
                calls_out.write(jsonl([key | c for c in r["calls"]]))
                totals = {t: sum(c[t] for c in r["calls"]) for t in TOKENS}
                decisions_out.write(
                    jsonl(
                        [key | {k: r[k] for k in ("final_answer", "correct", "stop_reason",
                                                  "samples_used")}
                         | {"calls": len(r["calls"])} | totals
                         | {"answered_language": r["answered_language"],
                            "detail_json": r["detail"], "error": r["error"]}]
                    )
                )  # fmt: skip
    plan = BatchPlan(
        run_id=run_id,
        items=items,
        bad_rows=len(bad),
        shards=[ShardLayout(p) for p in shard_prefixes],
        errors_uri=str(root / prefix / "errors.jsonl"),
        units_per_item=len(UNITS),
        started_at=datetime.now(UTC),
    )
    return plan, n_parts, n_units, n_calls


def columns_of(con: duckdb.DuckDBPyConnection, table: str) -> str:
    rows = con.execute(
        "SELECT column_name, data_type FROM information_schema.columns "
        "WHERE table_name = ? ORDER BY ordinal_position",
        [table],
    ).fetchall()
    return "{" + ", ".join(f"'{name}': '{kind}'" for name, kind in rows) + "}"


def bench_request(tmp: Path) -> BatchRequest:
    """The request whose plan ``write_run`` lays out under ``tmp``: its strategies are ``UNITS``."""
    return BatchRequest.model_validate(
        {
            "input_uri": str(tmp / "in.jsonl"),
            "output_uri": f"file://{tmp / 'out'}",
            "ledger_path": str(tmp / "ledger.sqlite"),
            "engine": {"kind": "scripted"},
            "strategies": [
                {"kind": "majority", "n": [1, 4, 8]},
                {"kind": "budget_forcing", "budgets_tokens": [512, 2048]},
            ],
            "shard_size": SHARD_SIZE,
            "run_id": "bench",
        }
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=50_000)
    parser.add_argument("--text-chars", type=int, default=60, help="completion text length")
    parser.add_argument("--zombie-every", type=int, default=100, help="every Nth part twice")
    parser.add_argument("--workdir", type=Path, default=None)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(dir=args.workdir) as tmp_dir:
        tmp = Path(tmp_dir)
        started = time.perf_counter()
        plan, n_parts, n_units, n_calls = write_run(
            tmp / "out", "bench", args.items, args.text_chars, args.zombie_every, tmp / "flat"
        )
        part_bytes = (tmp / "flat" / "parts.jsonl").stat().st_size
        print(
            f"staged {args.items:,} items × {len(UNITS)} units = {n_units:,} units, "
            f"{n_calls:,} calls in {n_parts:,} part objects ({part_bytes / 2**20:,.0f} MiB JSONL) "
            f"in {time.perf_counter() - started:.1f} s; cpus {os.cpu_count()}"
        )
        request = bench_request(tmp)

        started = time.perf_counter()
        summary = ingest(resolve_run(request), plan)
        ingest_s = time.perf_counter() - started
        assert (summary.units_added, summary.calls_added) == (n_units, n_calls), summary
        rows = n_units + n_calls + args.items
        print(
            f"batch.ingest (one transaction): {summary.units_added:,} units + "
            f"{summary.calls_added:,} calls + {args.items:,} items in {ingest_s:.2f} s "
            f"({rows / ingest_s:,.0f} rows/s)"
        )
        started = time.perf_counter()
        again = ingest(resolve_run(request), plan)
        reingest_s = time.perf_counter() - started
        assert (again.units_added, again.calls_added) == (0, 0) and again.totals == summary.totals
        print(f"batch.ingest again (idempotent, adds 0): {reingest_s:.2f} s")
        with Ledger(request.ledger_path, read_only=True) as ledger:
            _, check = ledger.query(
                "SELECT count(*) FROM item_decisions d JOIN item_spend s "
                "USING (run_id, item_id, strategy, budget) "
                "WHERE d.completion_tokens <> s.completion_tokens OR d.calls <> s.calls"
            )
            assert check[0][0] == 0, "decision totals must equal their call sums"
            _, threads = ledger.query("SELECT current_setting('threads')")

        # The floor: the same rows, already flat, bulk-loaded into an empty ledger lake.
        Ledger(tmp / "raw.sqlite").close()  # migrated: the same tables
        with connect_lake(tmp / "raw.sqlite") as con:
            started = time.perf_counter()
            con.execute("BEGIN TRANSACTION")
            for table, name in (
                ("items", "items"),
                ("generation_calls", "calls"),
                ("item_decisions", "decisions"),
            ):
                con.execute(
                    f"INSERT INTO {table} SELECT * FROM read_json(?, "
                    f"format='newline_delimited', columns={columns_of(con, table)})",
                    [str(tmp / "flat" / f"{name}.jsonl")],
                )
            con.execute("COMMIT")
            raw_s = time.perf_counter() - started
            (raw_calls,) = con.execute("SELECT count(*) FROM generation_calls").fetchone() or (0,)
            assert raw_calls == n_calls
        print(
            f"raw DuckDB load of the same flat rows (INSERT … SELECT * FROM read_json, "
            f"one transaction): {raw_s:.2f} s"
        )

        # Parsing alone: the part objects' bytes (without the zombie copies) into one table.
        call_struct = "STRUCT(" + ", ".join(f"{k} {v}" for k, v in CALL_FIELDS.items()) + ")[]"
        columns = UNIT_FIELDS | {"calls": call_struct}
        literal = "{" + ", ".join(f"'{k}': '{v}'" for k, v in columns.items()) + "}"
        with duckdb.connect() as con:
            started = time.perf_counter()
            con.execute(
                "CREATE TABLE parsed AS SELECT * FROM read_json(?, format='newline_delimited', "
                f"columns={literal})",
                [str(tmp / "flat" / "parts.jsonl")],
            )
            parse_s = time.perf_counter() - started
        print(f"raw DuckDB parse of the part JSONL into a table (no ledger): {parse_s:.2f} s")

        print(
            f"ratios: ingest / raw load {ingest_s / raw_s:.2f}×, ingest / raw parse "
            f"{ingest_s / parse_s:.2f}×, re-ingest / ingest {reingest_s / ingest_s:.2f}×; "
            f"duckdb threads {threads[0][0]}; peak RSS {peak_rss_mib():,.0f} MiB"
        )


if __name__ == "__main__":
    main()
