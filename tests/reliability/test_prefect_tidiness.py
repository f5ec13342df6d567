"""A run leaves nothing behind where it should not, and nothing stale where it did.

- A failing batch writes nothing under the user's home: ``ttscale run`` does not start Prefect,
  and the flow's failure results go under PREFECT_HOME (Prefect 3.7 pickles every failed run's
  exception, and its default path ignores PREFECT_HOME).
- A flow run left RUNNING by a killed process is marked Crashed when the same run resumes.
- Temporary folders of killed processes are removed when a batch starts.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml

from ttscale import tempfiles
from ttscale.schemas import BatchRequest

REPO = Path(__file__).resolve().parents[2]
LINES = [
    json.dumps({"id": f"q{i}", "question": f"What is {i} plus 2?", "answer": str(i + 2)})
    for i in range(2)
]


class _OverloadedServer(BaseHTTPRequestHandler):
    """An OpenAI-compatible endpoint that lists its model and answers every completion HTTP 503."""

    def log_message(self, *args: Any) -> None:
        pass

    def _send(self, status: int, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        if self.path == "/v1/models":
            self._send(200, {"object": "list", "data": [{"id": "m", "object": "model"}]})
        else:
            self._send(404, {"error": {"message": "not here"}})

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if self.path == "/tokenize":
            self._send(200, {"tokens": [1, 2, 3]})
        elif self.path == "/detokenize":
            self._send(200, {"prompt": "x"})
        else:
            self._send(503, {"error": {"message": "overloaded"}})


@pytest.fixture
def overloaded_endpoint() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _OverloadedServer)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/v1"
    finally:
        server.shutdown()
        server.server_close()


def _files_under(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


def test_a_failing_run_writes_nothing_under_home(
    tmp_path: Path, write_jsonl: Callable[..., Path], overloaded_endpoint: str
) -> None:
    """A batch whose units all fail (fail_on_error exceeded) writes nothing under HOME.

    ``ttscale run`` (no Prefect) exits 5. The flow takes both Prefect failure paths: its own (the
    failed-units check) and a task's (``plan-batch`` finding the run's input changed under the
    same run id, which ``ttscale run`` reports with exit 3); their results go under PREFECT_HOME.
    """
    home, prefect_home, out = tmp_path / "home", tmp_path / "prefect-home", tmp_path / "out"
    home.mkdir()
    prefect_home.mkdir()
    questions = write_jsonl(tmp_path / "in.jsonl", LINES)
    request = {
        "input_uri": str(questions),
        "output_uri": f"file://{out}",
        "ledger_path": str(out / "ledger.duckdb"),
        "run_id": "tidy",
        "engine": {"kind": "openai", "base_url": overloaded_endpoint, "model": "m"},
        "strategies": [{"kind": "majority", "n": [1]}],
    }
    config = tmp_path / "batch.yaml"
    config.write_text(yaml.safe_dump(request))
    request_json = tmp_path / "request.json"
    request_json.write_text(json.dumps(request))
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("PREFECT_", "XDG_", "TTSCALE_")) and k != "HOME"
    }
    env |= {
        "HOME": str(home),
        "PREFECT_HOME": str(prefect_home),
        "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "120",
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "DO_NOT_TRACK": "1",
        "AWS_EC2_METADATA_DISABLED": "true",
    }

    def run(*module: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", *module],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )

    def cli_run() -> subprocess.CompletedProcess[str]:
        return run("ttscale.cli", "run", "--config", str(config))

    def flow_run() -> subprocess.CompletedProcess[str]:
        return run("flows.batch", str(request_json))

    storage = prefect_home / "storage"
    failed = cli_run()
    assert failed.returncode == 5, failed.stdout + failed.stderr
    assert "2 of 2 units failed" in failed.stderr
    assert _files_under(home) == []
    assert not (out / "ledger.duckdb").exists()
    assert not storage.exists(), "ttscale run started Prefect"

    failed_flow = flow_run()
    assert failed_flow.returncode != 0, failed_flow.stdout + failed_flow.stderr
    assert "2 of 2 units failed" in failed_flow.stdout + failed_flow.stderr
    assert _files_under(home) == []
    stored = list(storage.iterdir())
    assert stored, "the failed flow's result went somewhere else"

    write_jsonl(questions, [LINES[0].replace("plus 2", "plus 3")])  # same run id, other input
    changed = cli_run()
    assert changed.returncode == 3, changed.stdout + changed.stderr
    assert "exists with other content" in changed.stderr
    changed_flow = flow_run()
    assert changed_flow.returncode != 0
    assert "exists with other content" in changed_flow.stdout + changed_flow.stderr
    assert _files_under(home) == []
    assert len(list(storage.iterdir())) > len(stored)  # the task's failure


def test_a_run_left_running_is_crashed_when_the_same_run_resumes(
    prefect_harness: None, tmp_path: Path, write_jsonl: Callable[..., Path]
) -> None:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.objects import StateType
    from prefect.states import Completed, Running

    from flows.batch import ttscale_batch

    request = BatchRequest.model_validate(
        {
            "input_uri": str(write_jsonl(tmp_path / "in.jsonl", LINES)),
            "output_uri": f"file://{tmp_path}/out",
            "ledger_path": str(tmp_path / "out" / "ledger.duckdb"),
            "engine": {"kind": "scripted"},
            "strategies": [{"kind": "majority", "n": [1, 2]}],
        }
    )
    run_id = request.resolved_run_id()
    parameters = {"request": request.model_dump(mode="json")}
    with get_client(sync_client=True) as client:
        # What a SIGKILLed process leaves: its flow run RUNNING for good.
        stale = client.create_flow_run(ttscale_batch, name=run_id, parameters=parameters)
        client.set_flow_run_state(stale.id, Running(), force=True)
        # Not this run's business: another run id, and an earlier run of this one that ended.
        other = client.create_flow_run(ttscale_batch, name=f"{run_id}-other")
        client.set_flow_run_state(other.id, Running(), force=True)
        ended = client.create_flow_run(ttscale_batch, name=run_id, parameters=parameters)
        client.set_flow_run_state(ended.id, Completed(), force=True)

    state = ttscale_batch(request, return_state=True)
    assert state.is_completed(), state.message
    resumed = state.state_details.flow_run_id
    assert resumed is not None

    with get_client(sync_client=True) as client:
        stale_state = client.read_flow_run(stale.id).state
        assert stale_state is not None and stale_state.type == StateType.CRASHED
        assert stale_state.message == (
            f"superseded: the same ttscale run resumed in flow run {resumed}"
        )
        resumed_run = client.read_flow_run(resumed)
        assert resumed_run.name == run_id and resumed_run.state_type == StateType.COMPLETED
        assert client.read_flow_run(other.id).state_type == StateType.RUNNING
        assert client.read_flow_run(ended.id).state_type == StateType.COMPLETED
        client.set_flow_run_state(other.id, Completed(), force=True)


def _dead_pid() -> int:
    """The pid of a process that has exited (and been reaped)."""
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def _age(path: Path, seconds: float) -> None:
    then = time.time() - seconds
    for item in [path, *path.rglob("*")]:
        os.utime(item, (then, then), follow_symlinks=False)


def test_prefix_names_the_kind_and_this_process() -> None:
    name = tempfiles.prefix("ingest") + "abc123"
    assert name.startswith(f"ttscale-ingest-{os.getpid()}-")
    assert tempfiles.owner_pid(name) == os.getpid()
    assert tempfiles.owner_pid("ttscale-ingest-k3j_x9ab") is None  # no pid: an older name
    assert tempfiles.owner_pid("other-ingest-12-x") is None
    with pytest.raises(ValueError):
        tempfiles.prefix("In gest")


def test_stale_cleanup_removes_only_old_leftovers_of_dead_processes(tmp_path: Path) -> None:
    dead = _dead_pid()
    leftover = tmp_path / f"ttscale-ingest-{dead}-abcd1234"
    (leftover / "sub").mkdir(parents=True)
    (leftover / "units.jsonl").write_bytes(b"x" * 1000)
    (leftover / "sub" / "items.jsonl").write_text("{}\n")
    leftover_file = tmp_path / f"ttscale-parquet-{dead}-zz.parquet"
    leftover_file.write_bytes(b"PAR1")
    fresh = tmp_path / f"ttscale-ingest-{dead}-fresh"  # its process may be in another namespace
    fresh.mkdir()
    busy = tmp_path / f"ttscale-ingest-{dead}-busy"  # its folder is old, a file in it is not
    busy.mkdir()
    (busy / "units.jsonl").write_text("")
    alive = tmp_path / f"ttscale-ingest-{os.getppid()}-alive"
    alive.mkdir()
    mine = tmp_path / f"ttscale-ingest-{os.getpid()}-mine"
    mine.mkdir()
    legacy = tmp_path / "ttscale-ingest-k3j_x9ab"
    legacy.mkdir()
    unrelated = tmp_path / f"other-{dead}-x"
    unrelated.mkdir()
    for path in (leftover, leftover_file, alive, mine, legacy, unrelated):
        _age(path, 2 * 3600)
    os.utime(busy, (time.time() - 7200, time.time() - 7200))

    removed = tempfiles.stale_cleanup(tmp_path)

    assert sorted(removed) == sorted([leftover, leftover_file])
    assert not leftover.exists() and not leftover_file.exists()
    for kept in (fresh, busy, alive, mine, legacy, unrelated):
        assert kept.exists(), kept
    assert tempfiles.stale_cleanup(tmp_path) == []  # nothing left to remove


def test_the_batch_flow_cleans_stale_temporaries_at_start(
    prefect_harness: None,
    tmp_path: Path,
    write_jsonl: Callable[..., Path],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from flows.batch import ttscale_batch

    temp = tmp_path / "tmp"
    temp.mkdir()
    monkeypatch.setattr("tempfile.tempdir", str(temp))
    leftover = temp / f"ttscale-ingest-{_dead_pid()}-killed"
    leftover.mkdir()
    (leftover / "units.jsonl").write_bytes(b"x" * 4096)
    _age(leftover, 2 * 3600)
    request = BatchRequest.model_validate(
        {
            "input_uri": str(write_jsonl(tmp_path / "in.jsonl", LINES)),
            "output_uri": f"file://{tmp_path}/out",
            "ledger_path": str(tmp_path / "out" / "ledger.duckdb"),
            "engine": {"kind": "scripted"},
            "strategies": [{"kind": "majority", "n": [1]}],
        }
    )
    assert ttscale_batch(request)["units_added"] == 2
    assert not leftover.exists()
    assert list(temp.iterdir()) == []  # and the ingest's own temporary folder is gone too
