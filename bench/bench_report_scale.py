"""Ingest + report of a run of N generation calls (default 10M) through the flow's own steps.

The run is laid out as a finished batch leaves it in a ``file://`` output store: shard inputs,
part objects (JSONL unit records, as ``PartWriter`` writes them; a few written twice by a
"zombie" worker), ``done.json`` manifests and the errors object (``bench_ingest.write_run``).
Then, timed in one process:

- ingest: ``ttscale.service.ingest`` (parts → the ledger lake, one transaction), as the flow;
- report: ``ttscale.service.publish_report`` (read the lake, build, render, publish);
- the limit: a raw DuckDB ``COPY`` of the same rows, already flat and in Parquet, into the
  same tables of an empty lake (one transaction), on the same machine in the same run.

Peak RSS is this process's (DuckDB runs in it). Run it alone: the figures are wall-clock.

    .venv/bin/python bench/bench_report_scale.py --calls 1000000
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import duckdb

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_ingest import UNITS, bench_request, columns_of, peak_rss_mib, write_run

from ttscale.ledger import Ledger
from ttscale.ledger.lake import connect_lake
from ttscale.service import ingest, publish_report, resolve_run

CALLS_PER_ITEM = sum(calls for _, _, calls in UNITS)
FLAT = (("items", "items"), ("generation_calls", "calls"), ("item_decisions", "decisions"))


def flat_to_parquet(con: duckdb.DuckDBPyConnection, flat: Path) -> dict[str, Path]:
    """The flat JSONL rows as one Parquet file per ledger table (not timed: the limit's input)."""
    files = {}
    for table, name in FLAT:
        files[table] = flat / f"{name}.parquet"
        con.execute(
            f"COPY (SELECT * FROM read_json(?, format='newline_delimited', "
            f"columns={columns_of(con, table)})) TO '{files[table]}' (FORMAT parquet)",
            [str(flat / f"{name}.jsonl")],
        )
    return files


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=10_000_000)
    parser.add_argument("--text-chars", type=int, default=60, help="completion text length")
    parser.add_argument("--workdir", type=Path, default=None)
    args = parser.parse_args()
    items = max(1, args.calls // CALLS_PER_ITEM)
    with tempfile.TemporaryDirectory(dir=args.workdir) as tmp_dir:
        tmp = Path(tmp_dir)
        started = time.perf_counter()
        plan, n_parts, n_units, n_calls = write_run(
            tmp / "out", "bench", items, args.text_chars, 100, tmp / "flat"
        )
        print(
            f"staged {items:,} items, {n_units:,} units, {n_calls:,} calls in {n_parts:,} part "
            f"objects in {time.perf_counter() - started:.0f} s; cpus {os.cpu_count()}",
            flush=True,
        )
        request = bench_request(tmp)
        ctx = resolve_run(request)
        # The files just written (parts, and the flat rows for the limit) go to disk first, as
        # a real run's parts have long before its ingest: the timings are the ingest's own, not
        # the page cache writing back what this bench made a moment ago.
        os.sync()

        started = time.perf_counter()
        summary = ingest(ctx, plan)
        ingest_s = time.perf_counter() - started
        assert (summary.units_added, summary.calls_added) == (n_units, n_calls), summary
        ingest_rss = peak_rss_mib()
        print(f"ingest (service.ingest, parts → lake): {ingest_s:.1f} s; peak RSS "
              f"{ingest_rss:,.0f} MiB", flush=True)  # fmt: skip

        started = time.perf_counter()
        published = publish_report(ctx, plan)
        report_s = time.perf_counter() - started
        print(
            f"report (service.publish_report: read, build, render, publish): {report_s:.1f} s "
            f"({len(published.report.slices)} slice(s), the default settings); peak RSS "
            f"{peak_rss_mib():,.0f} MiB",
            flush=True,
        )

        run_rss = peak_rss_mib()  # ingest + report; the limit's steps below come after
        Ledger(tmp / "raw.sqlite").close()  # migrated: the same tables
        with connect_lake(tmp / "raw.sqlite") as lake:
            files = flat_to_parquet(lake, tmp / "flat")
        size = sum(f.stat().st_size for f in files.values()) / 2**20
        with connect_lake(tmp / "raw.sqlite") as con:
            started = time.perf_counter()
            con.execute("BEGIN TRANSACTION")
            for table, path in files.items():
                con.execute(f"COPY {table} FROM '{path}' (FORMAT parquet)")
            con.execute("COMMIT")
            raw_s = time.perf_counter() - started
            (raw_calls,) = con.execute("SELECT count(*) FROM generation_calls").fetchone() or (0,)
            assert raw_calls == n_calls
        print(f"raw DuckDB COPY of the same rows from Parquet ({size:,.0f} MiB) into an empty "
              f"lake: {raw_s:.1f} s", flush=True)  # fmt: skip
        print(
            f"{n_calls:,} calls: ingest + report {ingest_s + report_s:.1f} s "
            f"(ingest {ingest_s / raw_s:.1f}× the raw COPY); peak RSS {run_rss:,.0f} MiB"
        )


if __name__ == "__main__":
    main()
