"""Several batches write the lake while users read it: nothing fails, every token counts once.

Real parts only: writer processes ingest through ``Ledger.ingest_run`` (``lake_writer.py``), and
the readers are ``ttscale sql`` subprocesses plus a long-held plain ``duckdb`` connection that
loads the extensions and attaches the lake as the README tells a user to. The catalog is a SQLite
file (the embedded default) or, where PostgreSQL's binaries are installed, a throwaway Postgres
cluster with the Parquet data on moto's S3 server.

Every figure is printed (``pytest -s``): writer seconds, reads done, transient errors retried.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from pathlib import Path

import duckdb
import pytest
from lake_writer import (
    TOTALS_SQL,
    check_exact,
    expected_totals,
    kill_inside_commit,
    lake_totals,
    start_writer,
)

from ttscale.ledger.lake import attach_sql, is_transient, load_extensions, parse_ledger
from ttscale.ledger.migrations import MIGRATIONS

WRITERS, RUNS_EACH = 4, 3

pytestmark = pytest.mark.slow


class Readers:
    """Reader loops in threads until stopped: ``ttscale sql`` and one long-held connection.

    Each read checks that every run it sees is whole (its calls and tokens as written).
    """

    def __init__(self, ledger: str) -> None:
        self.ledger, self.stop = ledger, threading.Event()
        self.reads = {"sql": 0, "held": 0}
        self.failures: list[str] = []
        self.transient_retried = 0
        self.threads = [threading.Thread(target=t) for t in (self._sql_loop, self._held_loop)]

    def __enter__(self) -> Readers:
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(timeout=120)

    def _check(self, rows: list[tuple[str, int, int]], who: str) -> None:
        for run_id, calls, tokens in rows:
            if (calls, tokens) != expected_totals(run_id):
                self.failures.append(f"{who} saw part of {run_id}: {calls} calls, {tokens} tokens")

    def _sql_loop(self) -> None:
        while not self.stop.is_set():
            command = ["sql", TOTALS_SQL, "--ledger", self.ledger, "--format", "json"]
            done = subprocess.run(
                [sys.executable, "-m", "ttscale.cli", *command],
                capture_output=True,
                text=True,
                timeout=120,
            )
            if done.returncode != 0:
                self.failures.append(f"ttscale sql exit {done.returncode}: {done.stderr.strip()}")
                continue
            rows = [(r["run_id"], r["calls"], r["tokens"]) for r in json.loads(done.stdout)]
            self._check(rows, "ttscale sql")
            self.reads["sql"] += 1

    def _held_loop(self) -> None:
        # What a notebook user does: LOAD the packaged extensions, ATTACH, and keep it open.
        spec = parse_ledger(self.ledger)
        con = duckdb.connect()
        load_extensions(con, ["ducklake", "sqlite_scanner", "postgres_scanner", "httpfs"])
        if spec.data_path and spec.data_path.startswith("s3://"):
            from ttscale.ledger.lake import _s3_secret_sql

            con.execute(_s3_secret_sql())
        con.execute(attach_sql(spec, read_only=True))
        con.execute("USE lake")
        try:
            while not self.stop.is_set():
                for _attempt in range(20):  # a user's retry on a busy SQLite catalog
                    try:
                        rows = con.execute(TOTALS_SQL).fetchall()
                        break
                    except duckdb.Error as exc:
                        if not is_transient(exc):
                            self.failures.append(f"held connection: {exc}")
                            return
                        self.transient_retried += 1
                        time.sleep(0.05)
                else:
                    self.failures.append("held connection: still busy after 20 tries")
                    continue
                self._check(rows, "held connection")
                self.reads["held"] += 1
                time.sleep(0.1)
        finally:
            con.close()


def _concurrent_batches(ledger: str) -> None:
    from ttscale.ledger import Ledger

    Ledger(ledger).close()  # the lake exists before the readers attach it
    groups = [[f"w{w}-b{b}" for b in range(RUNS_EACH)] for w in range(WRITERS)]
    started = time.monotonic()
    with Readers(ledger) as readers:
        writers = [start_writer(ledger, group) for group in groups]
        outputs = [w.communicate(timeout=600) for w in writers]
        time.sleep(0.5)  # one more read after the last commit
    failed = [err for w, (_, err) in zip(writers, outputs, strict=True) if w.returncode != 0]
    print(
        f"\n{ledger.split()[0]}: {WRITERS} writers × {RUNS_EACH} runs in "
        f"{time.monotonic() - started:.1f} s (each: "
        f"{[json.loads(out)['seconds'] for out, _ in outputs if out.strip()]} s); reads: "
        f"{readers.reads}; transient read errors retried by the held connection: "
        f"{readers.transient_retried}; writer retries (conflict/locked): "
        f"{sum(err.count('ledger retrying') for _, err in outputs)}; failed batches {len(failed)}, "
        f"failed reads {len(readers.failures)}"
    )
    reasons = {
        line.split("): ", 1)[-1][-90:]
        for _, err in outputs
        for line in err.splitlines()
        if "ledger retrying" in line
    }
    print(f"writer retry reasons: {sorted(reasons)}")
    assert failed == [], failed[0][-2000:]
    assert readers.failures == [], readers.failures[:5]
    assert readers.reads["sql"] > 0 and readers.reads["held"] > 0
    check_exact(ledger, [r for group in groups for r in group])


def _kill_mid_commit(ledger: str, tmp: Path) -> None:
    """kill -9 inside the ingest transaction (held before COMMIT), then as it commits: the
    re-run lands each run whole, and the totals equal a clean run's."""
    from ttscale.ledger import Ledger

    Ledger(ledger).close()
    for case, pause_s in (("held", "60"), ("committing", "0")):
        kill_inside_commit(ledger, f"kill-{case}", tmp / f"{case}.marker", pause_s)
        seen = lake_totals(ledger).get(f"kill-{case}")
        assert seen in (None, expected_totals(f"kill-{case}")), seen  # nothing, or all of it
        again = start_writer(ledger, [f"kill-{case}"])
        _, err = again.communicate(timeout=300)
        assert again.returncode == 0, err[-2000:]
    check_exact(ledger, ["kill-committing", "kill-held"])


def test_concurrent_batches_and_readers_on_a_sqlite_catalog(tmp_path: Path) -> None:
    _concurrent_batches(str(tmp_path / "ledger.sqlite"))


def test_kill_9_mid_commit_then_rerun_on_a_sqlite_catalog(tmp_path: Path) -> None:
    _kill_mid_commit(str(tmp_path / "ledger.sqlite"), tmp_path)


def test_concurrent_batches_and_readers_on_postgres_and_s3(postgres_s3_ledger: str) -> None:
    _concurrent_batches(postgres_s3_ledger)


def test_kill_9_mid_commit_then_rerun_on_postgres_and_s3(
    postgres_s3_ledger: str, tmp_path: Path
) -> None:
    _kill_mid_commit(postgres_s3_ledger, tmp_path)


def _same_run_twice(ledger: str) -> None:
    """Two processes ingest the same runs at once (a resumed run racing its stale parent)."""
    from ttscale.ledger import Ledger

    Ledger(ledger).close()
    run_ids = [f"same-{b}" for b in range(RUNS_EACH)]
    writers = [start_writer(ledger, run_ids) for _ in range(2)]
    for writer in writers:
        _, err = writer.communicate(timeout=600)
        assert writer.returncode == 0, err[-2000:]
    check_exact(ledger, run_ids)


def test_the_same_run_ingested_twice_at_once_counts_once_on_sqlite(tmp_path: Path) -> None:
    _same_run_twice(str(tmp_path / "ledger.sqlite"))


def test_the_same_run_ingested_twice_at_once_counts_once_on_postgres(
    postgres_s3_ledger: str,
) -> None:
    _same_run_twice(postgres_s3_ledger)


def _created_at_once(ledger: str) -> None:
    """4 processes open a lake that does not exist yet: it is created and migrated once."""
    from ttscale.ledger import Ledger

    code = f"from ttscale.ledger import Ledger; Ledger({ledger!r}).close()"
    openers = [
        subprocess.Popen([sys.executable, "-c", code], stderr=subprocess.PIPE, text=True)
        for _ in range(WRITERS)
    ]
    for opener in openers:
        _, err = opener.communicate(timeout=300)
        assert opener.returncode == 0, err[-2000:]
    with Ledger(ledger, read_only=True) as lake:
        _, rows = lake.query("SELECT version, count(*) FROM schema_migrations GROUP BY ALL")
        assert all(n == 1 for _, n in rows) and len(rows) == len(MIGRATIONS), rows
        assert lake.query("SELECT count(*) FROM ingest_lock")[1] == [(1,)]


def test_a_new_lake_opened_by_4_processes_at_once_on_sqlite(tmp_path: Path) -> None:
    _created_at_once(str(tmp_path / "ledger.sqlite"))


def test_a_new_lake_opened_by_4_processes_at_once_on_postgres(postgres_s3_ledger: str) -> None:
    _created_at_once(postgres_s3_ledger)
