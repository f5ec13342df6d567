"""3 concurrent ``ttscale run`` into one ledger while ``ttscale sql`` reads it every second.

What the issue checks, as a user would do it: each batch is a ``ttscale run`` subprocess (the
scripted engine: this tests the ledger, not a model), all three write the same ledger at once —
the default one (``ttscale-out/ledger.sqlite`` in a shared working directory), or a Postgres
catalog with its Parquet on moto's S3 server — and a reader runs ``ttscale sql`` every second.
All exit 0, no read fails, no read sees part of a run, and every run's item, unit, call and token
totals equal the same batch run alone into a ledger of its own.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
DEMO = REPO / "ttscale" / "data" / "demo.jsonl"
# Three different batches: different run ids, strategies and sizes.
BATCHES: dict[str, list[str]] = {
    "conc-a": ["--majority", "1,4", "--limit", "8"],
    "conc-b": ["--majority", "2,8", "--limit", "12"],
    "conc-c": ["--strategy", "esc:n=4,window=2", "--majority", "1", "--limit", "10"],
}
# Everything a run is counted by, per run: items, units, calls and tokens.
TOTALS_SQL = """
SELECT run_id,
       (SELECT count(*) FROM items i WHERE i.run_id = c.run_id) AS items,
       (SELECT count(*) FROM item_decisions d WHERE d.run_id = c.run_id) AS units,
       count(*) AS calls,
       sum(prompt_tokens) AS prompt_tokens,
       sum(completion_tokens) AS completion_tokens,
       sum(thinking_tokens) AS thinking_tokens
FROM generation_calls c GROUP BY run_id ORDER BY run_id
"""
Totals = dict[str, tuple[int, ...]]


def _ttscale(args: list[str], cwd: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "ttscale.cli", *args],
        cwd=cwd,
        env=os.environ | {"AWS_EC2_METADATA_DISABLED": "true", "PYTHONPATH": str(REPO)},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _run_args(run_id: str, cwd: Path, ledger: str | None, output: str | None) -> list[str]:
    config = cwd / "scripted.yaml"
    config.write_text("engine: {kind: scripted, accuracy: 0.7}\n")
    args = ["run", "--config", str(config), "--input", str(DEMO), "--run-id", run_id]
    args += ["--ledger", ledger] if ledger else []
    args += ["--output", output] if output else []
    return args + BATCHES[run_id]


def _read_totals(ledger: str | None, cwd: Path) -> tuple[int, Totals, str]:
    args = ["sql", " ".join(TOTALS_SQL.split()), "--format", "json"]
    args += ["--ledger", ledger] if ledger else []
    out, err = (reader := _ttscale(args, cwd)).communicate(timeout=120)
    if reader.returncode != 0:
        return reader.returncode, {}, err.strip()
    rows = json.loads(out)
    return 0, {r.pop("run_id"): tuple(int(v) for v in r.values()) for r in rows}, ""


class SqlEverySecond:
    """``ttscale sql`` once a second in a thread until stopped; keeps every failure."""

    def __init__(self, ledger: str | None, cwd: Path) -> None:
        self.ledger, self.cwd, self.stop = ledger, cwd, threading.Event()
        self.reads: list[Totals] = []
        self.read_starts: list[float] = []
        self.failures: list[str] = []
        self.thread = threading.Thread(target=self._loop)

    def __enter__(self) -> SqlEverySecond:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join(timeout=180)

    def _loop(self) -> None:
        while not self.stop.is_set():
            started = time.monotonic()
            code, totals, err = _read_totals(self.ledger, self.cwd)
            if code != 0:
                self.failures.append(f"ttscale sql exit {code}: {err}")
            else:
                self.reads.append(totals)
                self.read_starts.append(started)
            self.stop.wait(max(0.0, 1.0 - (time.monotonic() - started)))


def _concurrent_then_alone(
    cwd: Path, place: Callable[[str], tuple[str | None, str | None]]
) -> None:
    """The batches at once into one ledger, then each alone into its own: ``place(name)`` gives
    a fresh (ledger, output) pair, None for the default."""
    from ttscale.ledger import Ledger
    from ttscale.ledger.lake import parse_ledger
    from ttscale.schemas import default_ledger

    ledger, output = place("shared")
    cwd.mkdir(parents=True, exist_ok=True)
    # The lake exists before the reader's first query (a read of no lake is exit 7, rightly).
    Ledger(ledger or cwd / default_ledger()).close()
    started = time.monotonic()
    with SqlEverySecond(ledger, cwd) as reader:
        runs = {r: _ttscale(_run_args(r, cwd, ledger, output), cwd) for r in BATCHES}
        outputs = {r: p.communicate(timeout=900) for r, p in runs.items()}
        runs_done = time.monotonic()
        # At least one whole read that started after the last commit (slow on busy cores).
        deadline = time.monotonic() + 300
        while not any(t > runs_done for t in reader.read_starts) and not reader.failures:
            assert time.monotonic() < deadline, "no read finished after the batches"
            time.sleep(0.2)
    seconds = time.monotonic() - started
    for run_id, process in runs.items():
        assert process.returncode == 0, f"{run_id}: {outputs[run_id][1][-3000:]}"
    code, together, err = _read_totals(ledger, cwd)
    assert code == 0, err

    alone: Totals = {}
    for run_id in BATCHES:
        own_cwd = cwd.parent / f"alone-{run_id}-{cwd.name}"
        own_cwd.mkdir()
        own_ledger, own_output = place(run_id)
        process = _ttscale(_run_args(run_id, own_cwd, own_ledger, own_output), own_cwd)
        _, err = process.communicate(timeout=600)
        assert process.returncode == 0, err[-3000:]
        code, totals, err = _read_totals(own_ledger, own_cwd)
        assert code == 0 and list(totals) == [run_id], (err, totals)
        alone |= totals

    print(
        f"\n{parse_ledger(ledger).display if ledger else 'default ledger'}: {len(BATCHES)} concurrent runs in {seconds:.1f} s; "
        f"{len(reader.reads)} reads, {len(reader.failures)} failed; totals {together}"
    )
    assert reader.failures == [], reader.failures[:3]
    # On 2 busy cores one `ttscale sql` may take seconds: at least one read ran during the
    # batches and one after them.
    assert min(reader.read_starts) < runs_done < max(reader.read_starts), reader.read_starts
    assert together == alone
    # A reader sees a run whole or not at all: a run's calls land in one transaction.
    for totals in reader.reads:
        for run_id, seen in totals.items():
            assert seen == alone[run_id], f"a read saw part of {run_id}: {seen}"


def test_three_concurrent_runs_into_the_default_ledger_equal_each_run_alone(
    tmp_path: Path,
) -> None:
    # No --ledger and no --output: every run and the reader use ttscale-out/ in one directory.
    _concurrent_then_alone(tmp_path / "shared", lambda name: (None, None))


@pytest.mark.slow
def test_three_concurrent_runs_on_postgres_and_s3_equal_each_run_alone(
    postgres_server: Callable[[], str], s3_env: str, tmp_path: Path
) -> None:
    def place(name: str) -> tuple[str, str]:
        lake = f"ducklake:postgres:{postgres_server()} data_path=s3://{s3_env}/{name}/lake/"
        return lake, f"s3://{s3_env}/{name}/out"

    _concurrent_then_alone(tmp_path / "shared", place)
