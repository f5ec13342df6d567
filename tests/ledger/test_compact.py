"""`ttscale ledger compact` on a real lake: fewer files, the same rows, space freed only when safe.

Runs are ingested through ``Ledger.ingest_run`` (``lake_writer.py``, whose token counts each
run's id fixes), compaction runs through the CLI as a user runs it, and every check reads the
lake back: the rows of each run, one decision per unit, and the Parquet files on disk.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import lake_writer
import pytest
from lake_writer import check_exact, kill_inside_commit, start_writer

from ttscale.errors import ConfigError
from ttscale.ledger.maintenance import compact_ledger, parse_keep


def _compact(ledger: str | Path, *args: str) -> dict[str, Any]:
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "ttscale.cli",
            "ledger",
            "compact",
            "--ledger",
            str(ledger),
            "--json",
            *args,
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return dict(json.loads(done.stdout))


def _parquet_on_disk(ledger: Path) -> set[Path]:
    return set(Path(f"{ledger}.files").rglob("*.parquet"))


def _ingest(ledger: Path, run_ids: list[str]) -> None:
    lake_writer.main(str(ledger), run_ids)


def test_compact_merges_files_keeps_every_row_and_frees_space_after_the_window(
    tmp_path: Path,
) -> None:
    ledger = tmp_path / "ledger.sqlite"
    runs = [f"run-{i}" for i in range(4)]
    _ingest(ledger, runs)
    _ingest(ledger, runs[:1])  # ingested again: adds nothing
    check_exact(ledger, runs)
    files_at_start = _parquet_on_disk(ledger)

    kept = _compact(ledger)  # the default window: nothing deleted yet, readers keep their files
    assert kept["after"]["data_files"] < kept["before"]["data_files"]
    assert kept["before"]["data_files"] == len(files_at_start)
    assert kept["files_deleted"] == 0 and kept["snapshots_expired"] == 0
    live = kept["after"]["data_files"] + kept["after"]["delete_files"]
    assert kept["files_kept"] == len(_parquet_on_disk(ledger)) - live > 0
    assert files_at_start <= _parquet_on_disk(ledger)
    check_exact(ledger, runs)

    freed = _compact(ledger, "--keep", "0")
    assert freed["files_deleted"] >= kept["files_kept"] and freed["files_kept"] == 0
    assert freed["snapshots_expired"] > 0
    live = freed["after"]["data_files"] + freed["after"]["delete_files"]
    assert len(_parquet_on_disk(ledger)) == live
    check_exact(ledger, runs)

    # The lake goes on as before: an ingest after compaction, and a compaction with nothing to do.
    _ingest(ledger, ["run-after"])
    check_exact(ledger, [*runs, "run-after"])
    again = _compact(ledger, "--keep", "0")
    assert again["before"]["data_files"] >= again["after"]["data_files"]
    check_exact(ledger, [*runs, "run-after"])


def test_orphans_of_a_killed_writer_go_only_once_a_day_old(tmp_path: Path) -> None:
    ledger = tmp_path / "ledger.sqlite"
    _ingest(ledger, ["before"])
    _compact(ledger, "--keep", "0")
    clean = _parquet_on_disk(ledger)

    # A writer killed before its COMMIT leaves the Parquet files it wrote, known to no snapshot.
    kill_inside_commit(str(ledger), "killed", tmp_path / "held.marker")
    orphans = _parquet_on_disk(ledger) - clean
    assert orphans

    # Younger than a day, an orphan may be an ingest's about to commit: kept, even with --keep 0.
    young = _compact(ledger, "--keep", "0")
    assert young["files_deleted"] == 0
    assert orphans <= _parquet_on_disk(ledger)

    two_days_ago = time.time() - 2 * 86400
    for path in orphans:
        os.utime(path, (two_days_ago, two_days_ago))
    old = _compact(ledger, "--keep", "0")
    assert old["files_deleted"] == len(orphans)
    assert _parquet_on_disk(ledger) == clean
    check_exact(ledger, ["before"])

    _ingest(ledger, ["killed"])  # the re-run lands it whole
    check_exact(ledger, ["before", "killed"])


def test_compact_on_postgres_and_s3(postgres_s3_ledger: str) -> None:
    """The service's lake: the merge, the expiry and the deletes work on S3 objects too."""
    import boto3

    bucket = postgres_s3_ledger.rsplit("s3://", 1)[1].split("/")[0]
    s3 = boto3.client("s3", endpoint_url=os.environ["AWS_ENDPOINT_URL"], region_name="us-east-1")

    def objects() -> int:
        return int(s3.list_objects_v2(Bucket=bucket, Prefix="lake/").get("KeyCount", 0))

    runs = [f"pg-{i}" for i in range(3)]
    lake_writer.main(postgres_s3_ledger, runs)
    at_start = objects()
    freed = _compact(postgres_s3_ledger, "--keep", "0")
    assert freed["before"]["data_files"] == at_start
    assert freed["after"]["data_files"] < freed["before"]["data_files"]
    assert freed["files_deleted"] > 0 and freed["files_kept"] == 0
    assert objects() == freed["after"]["data_files"] + freed["after"]["delete_files"]
    check_exact(postgres_s3_ledger, runs)


@pytest.mark.slow
def test_compact_while_batches_ingest_loses_nothing(tmp_path: Path) -> None:
    """Two writer processes ingest three runs each while compaction runs again and again."""
    ledger = tmp_path / "ledger.sqlite"
    _ingest(ledger, ["seed-0", "seed-1"])
    groups = [[f"w{w}-b{b}" for b in range(3)] for w in range(2)]
    writers = [start_writer(str(ledger), group) for group in groups]
    compactions, errors = 0, []
    stop = threading.Event()

    def compact_loop() -> None:
        nonlocal compactions
        while not stop.is_set():
            try:
                compact_ledger(ledger, timedelta(days=7))
                compactions += 1
            except Exception as exc:  # every failure is the finding
                errors.append(repr(exc))
                return

    thread = threading.Thread(target=compact_loop)
    thread.start()
    outputs = [w.communicate(timeout=600) for w in writers]
    stop.set()
    thread.join(timeout=300)
    print(f"\n{compactions} compactions while 2 writers ingested 6 runs; errors {errors}")
    assert [w.returncode for w in writers] == [0, 0], [err[-2000:] for _, err in outputs]
    assert errors == [] and compactions > 0
    runs = ["seed-0", "seed-1", *groups[0], *groups[1]]
    check_exact(ledger, runs)


@pytest.mark.parametrize(
    ("text", "expected"),
    [("7d", timedelta(days=7)), ("12h", timedelta(hours=12)), ("30m", timedelta(minutes=30)),
     ("45s", timedelta(seconds=45)), ("0", timedelta(0)), (" 2d ", timedelta(days=2))],
)  # fmt: skip
def test_keep_reads_a_number_and_a_unit(text: str, expected: timedelta) -> None:
    assert parse_keep(text) == expected


@pytest.mark.parametrize("text", ["7", "5x", "-1d", "1.5h", "", "d"])
def test_a_keep_without_a_unit_or_number_is_refused(text: str) -> None:
    with pytest.raises(ConfigError, match="--keep"):
        parse_keep(text)


def test_compact_cli_errors_are_one_line_with_their_exit_code(tmp_path: Path) -> None:
    def run(*args: str) -> subprocess.CompletedProcess[str]:
        command = [sys.executable, "-m", "ttscale.cli", "ledger", "compact", *args]
        return subprocess.run(command, capture_output=True, text=True, timeout=120)

    missing = run("--ledger", str(tmp_path / "none.sqlite"))
    assert missing.returncode == 7
    assert missing.stderr.strip() == f"error: no ledger at {tmp_path / 'none.sqlite'}"
    assert not (tmp_path / "none.sqlite").exists()
    bad_keep = run("--ledger", str(tmp_path / "none.sqlite"), "--keep", "5x")
    assert bad_keep.returncode == 2 and "--keep '5x'" in bad_keep.stderr


def test_the_weekly_flow_compacts_the_services_ledger(
    prefect_harness: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """As prefect.yaml's ``weekly`` deployment runs it: no ledger given, the pod's one."""
    from prefect.artifacts import Artifact

    from flows.maintenance import ttscale_ledger_compact
    from ttscale.schemas import LEDGER_ENV

    ledger = tmp_path / "service-ledger.sqlite"
    monkeypatch.setenv(LEDGER_ENV, str(ledger))
    nights = [f"night-{i}" for i in range(4)]
    _ingest(ledger, nights)
    result = ttscale_ledger_compact(keep="0")
    assert result["ledger"].endswith(str(ledger))
    assert result["after"]["data_files"] < result["before"]["data_files"]
    assert (
        len(_parquet_on_disk(ledger))
        == result["after"]["data_files"] + result["after"]["delete_files"]
    )
    check_exact(ledger, nights)
    artifact = Artifact.get("ledger-compact")
    assert artifact is not None and "| before |" in str(artifact.data)
