"""``ttscale run`` SIGKILLed at three points (mid-shard, during ingest, during the report), then
run again: every unit and token counted exactly once, as in an uninterrupted run, and no staging
directory left behind (a killed ingest's is removed by the next batch once it is stale).

The phase is read from outside the process: a part object in the first shard (mid-shard); the
ledger's staging directory under the run's TMPDIR (ingest, see ``Ledger._ingest``: parts are
staged there, then one transaction inserts them); that directory gone again, so the ingest
committed, or the first report object (report). Enough items that ingest and report take
a good fraction of a second. (``tests/service/test_kill_resume.py`` kills a batch mid-shard under
a real Prefect server; here it is the CLI, against the session's test API.)
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from ledger_helpers import open_ledger

from flows.batch import ttscale_batch
from ttscale import tempfiles
from ttscale.schemas import BatchRequest
from ttscale.service import RunLayout, read_parts
from ttscale.storage import LocalStore

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "service"))
from service_helpers import (
    UNITS_PER_ITEM,
    decisions_per_item,
    ledger_totals,
    scaled,
    scripted_request,
    write_questions,
)

REPO = Path(__file__).resolve().parents[2]
ITEMS = 240
SHARD_SIZE = 120
STAGING = "ttscale-ingest-"


@dataclass(frozen=True)
class Reference:
    questions: Path
    run_id: str
    totals: dict[str, Any]


@pytest.fixture(scope="module")
def api_url(prefect_harness: None) -> str:
    """The session's test Prefect API, for the CLI subprocesses (no ephemeral server each)."""
    from prefect.settings import PREFECT_API_URL

    url = PREFECT_API_URL.value()
    assert url
    return str(url)


@pytest.fixture(scope="module")
def reference(prefect_harness: None, tmp_path_factory: pytest.TempPathFactory) -> Reference:
    """The same request run once, uninterrupted."""
    base = tmp_path_factory.mktemp("kill-reference")
    questions = write_questions(base / "questions.jsonl", ITEMS)
    out = base / "out"
    result = ttscale_batch(_request(questions, out))
    totals = ledger_totals(out / "ledger.duckdb", result["run_id"])
    assert totals["units"] == totals["distinct_units"] == ITEMS * UNITS_PER_ITEM
    return Reference(questions, result["run_id"], totals)


def _request(questions: Path, out: Path) -> BatchRequest:
    return scripted_request(
        str(questions), out.as_uri(), out / "ledger.duckdb", shard_size=SHARD_SIZE
    )


@dataclass
class Killed:
    out: Path
    tmpdir: Path
    config: Path
    env: dict[str, str]
    request: BatchRequest
    pid: int = 0
    """The killed process."""

    @property
    def run_dir(self) -> Path:
        return self.out / "runs" / self.request.resolved_run_id()

    def staging(self) -> list[str]:
        return sorted(p.name for p in self.tmpdir.iterdir() if p.name.startswith(STAGING))


@pytest.fixture
def killed(
    reference: Reference, api_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Killed]:
    """A run's output folder, TMPDIR and config; in-process re-runs stage under that TMPDIR too."""
    out, tmpdir = tmp_path / "out", tmp_path / "tmp"
    tmpdir.mkdir()
    request = _request(reference.questions, out)
    config = tmp_path / "request.yaml"
    config.write_text(yaml.safe_dump(request.model_dump(mode="json")))
    env = os.environ | {
        "PREFECT_API_URL": api_url,
        "TMPDIR": str(tmpdir),
        "PREFECT_LOGGING_LEVEL": "WARNING",
        "AWS_EC2_METADATA_DISABLED": "true",
    }
    monkeypatch.setattr(tempfile, "tempdir", str(tmpdir))
    yield Killed(out, tmpdir, config, env, request)


def _run_and_kill(k: Killed, at: Callable[[], bool], what: str) -> None:
    """Start ``ttscale run --config``; SIGKILL it as soon as ``at()`` holds."""
    log = (k.tmpdir.parent / "killed-run.log").open("wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "ttscale.cli", "run", "--config", str(k.config)],
        cwd=REPO,
        env=k.env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + scaled(120)
        while not at():
            assert process.poll() is None, (
                f"the run ended (exit {process.returncode}) before {what}"
            )
            assert time.monotonic() < deadline, f"never reached {what}"
            time.sleep(0.003)
        process.send_signal(signal.SIGKILL)
        process.wait(scaled(30))
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        log.close()
    assert process.returncode == -signal.SIGKILL
    k.pid = process.pid


def _run_status(ledger: Path, run_id: str) -> str | None:
    con = open_ledger(str(ledger))
    try:
        row = con.execute("SELECT status FROM runs WHERE run_id = ?", [run_id]).fetchone()
    finally:
        con.close()
    return None if row is None else str(row[0])


def _assert_exactly_once(k: Killed, reference: Reference) -> None:
    ledger = k.out / "ledger.duckdb"
    run_id = k.request.resolved_run_id()
    assert run_id == reference.run_id
    totals = ledger_totals(ledger, run_id)
    assert totals == reference.totals  # nothing lost, nothing counted twice
    assert totals["units"] == totals["distinct_units"] == ITEMS * UNITS_PER_ITEM
    assert totals["error_units"] == 0
    assert totals["completion_tokens"] == totals["unit_completion_tokens"] > 0
    per_item = decisions_per_item(ledger, run_id)
    assert len(per_item) == ITEMS and set(per_item.values()) == {UNITS_PER_ITEM}
    store = LocalStore(k.out)
    layout = RunLayout.of("", run_id)
    records = Counter(
        r.key
        for i in range(ITEMS // SHARD_SIZE)
        for _, rs in read_parts(store, layout.shard(i))
        for r in rs
    )
    assert len(records) == ITEMS * UNITS_PER_ITEM
    assert max(records.values()) == 1, [key for key, n in records.items() if n > 1][:5]
    assert _run_status(ledger, run_id) == "completed"
    report = k.run_dir / "report"
    assert {p.name for p in report.iterdir()} >= {"report.json", "report.md", "report.html"}


def _age(path: Path, seconds: float) -> None:
    """Make ``path`` and everything under it look untouched for ``seconds``."""
    then = time.time() - seconds
    for item in [path, *path.rglob("*")]:
        os.utime(item, (then, then), follow_symlinks=False)


def _assert_no_staging_left(k: Killed) -> None:
    assert sorted(p.name for p in k.tmpdir.iterdir()) == []


def test_sigkill_mid_shard(killed: Killed, reference: Reference) -> None:
    first_shard = killed.run_dir / "shards" / "00000"

    def mid_shard() -> bool:
        return first_shard.is_dir() and any(first_shard.glob("part-*.jsonl"))

    _run_and_kill(killed, mid_shard, "a part object in the first shard")
    assert not (first_shard / "done.json").exists(), "killed too late: the shard had finished"
    assert not (killed.out / "ledger.duckdb").exists()

    ttscale_batch(killed.request)
    _assert_exactly_once(killed, reference)
    _assert_no_staging_left(killed)


def test_sigkill_during_ingest(killed: Killed, reference: Reference) -> None:
    _run_and_kill(killed, lambda: bool(killed.staging()), "the ledger's ingest")
    assert killed.staging(), "killed too late: the ingest had finished"
    assert all((killed.run_dir / "shards" / f"{i:05d}" / "done.json").exists() for i in (0, 1))
    assert not (killed.run_dir / "report").exists()
    # The killed ingest's staging folder stays behind. A batch removes such leftovers when it
    # starts, once their process is gone and they are older than tempfiles.STALE_AFTER_S: age
    # it past that, as if the re-run came later.
    assert all(name.startswith(f"{STAGING}{killed.pid}-") for name in killed.staging())
    for name in killed.staging():
        _age(killed.tmpdir / name, tempfiles.STALE_AFTER_S + 60)

    # The re-run through the CLI, as a user would: exit 0.
    rerun = subprocess.run(
        [sys.executable, "-m", "ttscale.cli", "run", "--config", str(killed.config)],
        cwd=REPO,
        env=killed.env,
        capture_output=True,
        text=True,
        timeout=scaled(300),
    )
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    assert f"run {reference.run_id}: {ITEMS} items" in rerun.stdout
    _assert_exactly_once(killed, reference)
    _assert_no_staging_left(killed)


def test_sigkill_during_report(killed: Killed, reference: Reference) -> None:
    seen_ingest = False

    def reporting() -> bool:
        nonlocal seen_ingest
        staging = bool(killed.staging())
        seen_ingest |= staging
        return (seen_ingest and not staging) or (killed.run_dir / "report").exists()

    _run_and_kill(killed, reporting, "the end of the ingest")
    ledger = killed.out / "ledger.duckdb"
    # The ingest committed (all of it, or the run's row would not be there) ...
    assert ledger_totals(ledger, reference.run_id)["units"] == ITEMS * UNITS_PER_ITEM
    # ... and the report had not finished: it marks the run completed last.
    assert _run_status(ledger, reference.run_id) != "completed", "killed too late"

    ttscale_batch(killed.request)
    _assert_exactly_once(killed, reference)
    _assert_no_staging_left(killed)
