"""Time ingest + report on a synthetic ledger of N generation calls (default 10M).

Ingest is done the way the service does it: call rows staged as Parquet, then
``INSERT OR IGNORE INTO generation_calls SELECT ... FROM read_parquet(...)``.

    .venv/bin/python bench/bench_report_scale.py --calls 200000
"""

from __future__ import annotations

import argparse
import resource
import sys
import tempfile
import time
from pathlib import Path

import duckdb

from ttscale.analysis.synthetic import PlantedCurve, SyntheticLedgerSpec, synthetic_tables
from ttscale.ledger import Ledger
from ttscale.ledger.report_data import build_report_from_ledger
from ttscale.reports import ReportSettings, render_html, render_markdown

# The synthetic-ledger writer is a test fixture (tests/synthetic_ledger.py), not package code.
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from synthetic_ledger import CALLS_SELECT, insert_decisions, insert_run

CURVES = (
    PlantedCurve("majority", (1, 2, 4, 8, 16), f_max=0.8, p=0.35),
    PlantedCurve(
        "budget_forcing",
        (512, 1024, 2048, 4096),
        f_max=0.75,
        p=0.7,
        decline_after=2048,
        decline_rate=0.1,
        tokens_per_sample=2500,
    ),
)
SLICES = (("gsm8k", "en"), ("mgsm", "de"), ("mgsm", "ja"), ("mgsm", "sw"))
# 1+2+4+8+16 majority samples and 4 budgets × (thinking + answer) calls per item and slice.
CALLS_PER_ITEM = 31 + 8


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=10_000_000)
    parser.add_argument("--resamples", type=int, default=2000)
    parser.add_argument("--workdir", type=Path, default=None)
    args = parser.parse_args()
    items_per_slice = max(1, args.calls // (CALLS_PER_ITEM * len(SLICES)))
    spec = SyntheticLedgerSpec(
        curves=CURVES, slices=SLICES, items_per_slice=items_per_slice, run_id="bench", seed=1
    )
    with tempfile.TemporaryDirectory(dir=args.workdir) as tmp:
        staging = Path(tmp) / "calls.parquet"
        started = time.perf_counter()
        _, calls, decisions = synthetic_tables(spec)
        with duckdb.connect() as scratch:
            scratch.register("calls", calls)
            scratch.execute(
                f"COPY ({CALLS_SELECT.format(source='calls')}) TO '{staging}' (FORMAT parquet)",
                [spec.run_id, [c.strategy for c in spec.curves], spec.prompt_tokens],
            )
        del calls
        print(
            f"staged {items_per_slice * len(SLICES) * CALLS_PER_ITEM:,} calls "
            f"({staging.stat().st_size / 2**20:.0f} MiB parquet) "
            f"in {time.perf_counter() - started:.1f} s"
        )

        con = Ledger(Path(tmp) / "ledger.duckdb").con
        insert_run(con, spec)
        started = time.perf_counter()
        con.execute(
            "INSERT OR IGNORE INTO generation_calls SELECT * FROM read_parquet(?)", [str(staging)]
        )
        insert_decisions(con, spec, decisions)
        ingest_s = time.perf_counter() - started
        (rows,) = con.execute("SELECT count(*) FROM generation_calls").fetchone() or (0,)
        print(
            f"ingest: {rows:,} call rows + decisions in {ingest_s:.1f} s "
            f"({rows / ingest_s:,.0f} rows/s); peak RSS {peak_rss_mib():,.0f} MiB"
        )

        started = time.perf_counter()
        con.execute(
            "INSERT OR IGNORE INTO generation_calls SELECT * FROM read_parquet(?)", [str(staging)]
        )
        (again,) = con.execute("SELECT count(*) FROM generation_calls").fetchone() or (0,)
        assert again == rows, "re-ingest must not add rows"
        print(f"re-ingest (all duplicates, ignored): {time.perf_counter() - started:.1f} s")

        started = time.perf_counter()
        report = build_report_from_ledger(
            con, spec.run_id, ReportSettings(bootstrap_resamples=args.resamples)
        )
        build_s = time.perf_counter() - started
        started = time.perf_counter()
        sizes = (
            len(report.model_dump_json()),
            len(render_markdown(report)),
            len(render_html(report)),
        )
        render_s = time.perf_counter() - started
        print(
            f"read + build_report: {build_s:.1f} s ({len(report.slices)} slices, "
            f"{items_per_slice:,} items each, {args.resamples} resamples); "
            f"render json/md/html ({sizes[0]:,}/{sizes[1]:,}/{sizes[2]:,} bytes): {render_s:.2f} s"
        )
        print(f"peak RSS: {peak_rss_mib():,.0f} MiB")
        con.close()


if __name__ == "__main__":
    main()
