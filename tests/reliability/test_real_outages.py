"""Real outages mid-run give the documented exit codes, and a re-run after them resumes.

- Exit 5: a real ``vllm serve`` of the tiny model is SIGKILLed while ``ttscale run`` generates
  (after its first part object is written). The run stops with one error line naming the engine,
  nothing is ingested, the parts already written stay; with the server back, the same batch
  completes and every unit is generated exactly once.
- Exit 4: the S3 server holding the run's output is stopped mid-run. The run stops after the
  bounded retries (``TTSCALE_RETRY_ATTEMPTS=2``) with one error line. SeaweedFS keeps its data
  across a restart, so there the same batch then resumes and completes; moto (the fallback when
  no ``weed`` binary is installed) keeps it in memory, so there only the failure is checked.

Each ``ttscale run`` is a subprocess, as a user runs it (the service in-process, no Prefect).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import httpx
import pytest
import yaml
from outage_helpers import (
    _added_units,
    _answers,
    _assert_exactly_once,
    _assert_one_error_line,
    _finish,
    _free_port,
    _kill_group,
    _ledger_runs,
    _questions,
    _settled_records,
    _start_run,
    _wait_until,
)

API_KEY = "sk-outage-test"
KEY_ENV = "TTSCALE_TEST_OUTAGE_KEY"
SERVED_NAME = "tiny"
START_TIMEOUT_S = 180
S3_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "ttscale-test",
    "AWS_SECRET_ACCESS_KEY": "ttscale-test-secret",
    "AWS_DEFAULT_REGION": "us-east-1",
}


class VLLMServer:
    """``vllm serve`` of a model folder on a fixed loopback port, started and killed at will."""

    def __init__(self, model_dir: Path, port: int, log_dir: Path) -> None:
        self.model_dir, self.port, self.log_dir = model_dir, port, log_dir
        self.process: subprocess.Popen[bytes] | None = None
        self.starts = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def start(self) -> None:
        self.starts += 1
        log_path = self.log_dir / f"server-{self.starts}.log"
        env = os.environ | {"VLLM_ENABLE_V1_MULTIPROCESSING": "0", "VLLM_CPU_KVCACHE_SPACE": "1"}
        command = [
            sys.executable, "-m", "vllm.entrypoints.openai.api_server",
            "--model", str(self.model_dir), "--served-model-name", SERVED_NAME,
            "--host", "127.0.0.1", "--port", str(self.port), "--api-key", API_KEY,
            "--enforce-eager", "--distributed-executor-backend", "uni", "--dtype", "float32",
            "--max-model-len", "512", "--max-num-seqs", "64", "--max-num-batched-tokens", "4096",
            "--disable-log-stats", "--disable-uvicorn-access-log",
        ]  # fmt: skip
        with log_path.open("wb") as log:
            # Its own session: a SIGKILL of the group takes the engine-core child too.
            self.process = subprocess.Popen(
                command, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True
            )
        deadline = time.monotonic() + START_TIMEOUT_S
        health = f"http://127.0.0.1:{self.port}/health"
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                tail = log_path.read_text(errors="replace")[-3000:]
                pytest.fail(f"vllm serve exited with {self.process.returncode}:\n{tail}")
            try:
                if httpx.get(health, timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
        tail = log_path.read_text(errors="replace")[-3000:]
        pytest.fail(f"vllm serve not healthy after {START_TIMEOUT_S}s:\n{tail}")

    def kill(self) -> None:
        if self.process is not None:
            _kill_group(self.process)


@pytest.fixture
def vllm_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[VLLMServer]:
    """A dedicated ``vllm serve`` of the tiny model for this test (it gets killed)."""
    pytest.importorskip("vllm", reason="vllm is not installed (pip install -e '.[cpu]')")
    from tiny_model import build_tiny_model

    model_dir = build_tiny_model(tmp_path_factory.mktemp("outage-model"))
    server = VLLMServer(model_dir, _free_port(), tmp_path_factory.mktemp("outage-vllm"))
    server.start()
    try:
        yield server
    finally:
        server.kill()


def _local_parts(output: Path, run_id: str) -> dict[str, list[dict[str, Any]]]:
    return {
        str(path.relative_to(output)): [json.loads(line) for line in path.read_text().splitlines()]
        for path in sorted((output / "runs" / run_id / "shards").glob("*/part-*"))
    }


@pytest.mark.slow
def test_killed_engine_exits_5_and_a_rerun_resumes(
    prefect_harness: None, vllm_server: VLLMServer, tmp_path: Path
) -> None:
    items, run_id = 8, "outage-engine"
    output, ledger = tmp_path / "out", tmp_path / "out" / "ledger.duckdb"
    config = tmp_path / "req.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "input_uri": str(_questions(tmp_path / "q.jsonl", items)),
                "output_uri": f"file://{output}",
                "ledger_path": str(ledger),
                "run_id": run_id,
                # One item per shard: shards run one after another, each checkpointed at its end.
                "shard_size": 1,
                "strategies": {
                    "majority": {"n": [2, 4], "max_tokens": 64},
                    "budget_forcing": None,
                },
                "engine": {
                    "kind": "openai", "base_url": vllm_server.url, "model": SERVED_NAME,
                    "api_key_env": KEY_ENV,
                },
            }
        )
    )  # fmt: skip
    total = items * 2
    env = {KEY_ENV: API_KEY, "PREFECT_API_URL": os.environ.get("PREFECT_API_URL", "")}

    run = _start_run(config, tmp_path, env)
    try:
        _wait_until(lambda: bool(_local_parts(output, run_id)), 240, "the run's first part")
    except TimeoutError:
        run.kill()
        pytest.fail("no part was written:\n" + "".join(run.communicate()))
    vllm_server.kill()
    code, text = _finish(run)
    _assert_one_error_line(text, 5, code, f"openai:{SERVED_NAME}@{vllm_server.url}")
    assert run_id not in _ledger_runs(ledger)  # nothing ingested
    before = _local_parts(output, run_id)
    assert before  # the parts written before the outage stay
    assert 0 < len(_settled_records(before)) < total, "the run ended before the kill"

    vllm_server.start()  # a new server, on the same port
    code, text = _finish(_start_run(config, tmp_path, env))
    assert code == 0, text
    assert _added_units(text) == total
    _assert_exactly_once(before, _local_parts(output, run_id), ledger, run_id, total)


# -- exit 4: the S3 server stops mid-run ----------------------------------------------------------


class S3Server:
    """SeaweedFS (``weed mini``: data in a folder, kept across restarts) or moto (in memory)."""

    def __init__(self, data: Path) -> None:
        weed = shutil.which("weed", path=str(Path(sys.executable).parent)) or shutil.which("weed")
        self.weed, self.data = weed, data
        self.ports = {name: _free_port() for name in ("master", "volume", "filer", "s3", "admin")}
        self.process: subprocess.Popen[bytes] | None = None
        self.moto: Any = None

    @property
    def persistent(self) -> bool:
        return self.weed is not None

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.ports['s3']}"

    def start(self) -> None:
        if self.weed is None:
            from moto.server import ThreadedMotoServer

            self.moto = ThreadedMotoServer(ip_address="127.0.0.1", port=self.ports["s3"])
            self.moto.start()
        else:
            # As tests/service/conftest.py's fixture: credentials enforced, fixed ports.
            command = [self.weed, "mini", f"-dir={self.data}", "-ip=127.0.0.1"]
            command += ["-ip.bind=127.0.0.1", "-webdav=false", "-debug=false"]
            command += [f"-{name}.port={port}" for name, port in self.ports.items()]
            command += ["-s3.port.iceberg=0", "-s3.port.lance=0"]
            with (self.data / "weed.log").open("ab") as log:
                self.process = subprocess.Popen(
                    command,
                    env=os.environ | S3_CREDENTIALS,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    cwd=self.data,
                    start_new_session=True,
                )
        _wait_until(lambda: _answers(self.endpoint), 90, "the S3 server")

    def stop(self) -> None:
        if self.moto is not None:
            self.moto.stop()
            self.moto = None
        if self.process is not None:
            _kill_group(self.process)
            self.process = None

    def client(self) -> Any:
        return boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            aws_access_key_id=S3_CREDENTIALS["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=S3_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
            region_name="us-east-1",
        )

    def parts(self, bucket: str, prefix: str) -> dict[str, list[dict[str, Any]]]:
        client = self.client()
        pages = client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
        keys = sorted(o["Key"] for page in pages for o in page.get("Contents", []))
        return {
            key: [
                json.loads(line)
                for line in client.get_object(Bucket=bucket, Key=key)["Body"].read().splitlines()
            ]
            for key in keys
            if "/part-" in key
        }


@pytest.fixture
def s3_server(tmp_path: Path) -> Iterator[S3Server]:
    data = tmp_path / "s3-data"
    data.mkdir()
    server = S3Server(data)
    server.start()
    try:
        yield server
    finally:
        server.stop()


def test_stopped_s3_exits_4_and_a_rerun_resumes(
    prefect_harness: None, s3_server: S3Server, tmp_path: Path
) -> None:
    items, run_id, bucket = 6, "outage-s3", "outage"
    s3_server.client().create_bucket(Bucket=bucket)
    ledger = tmp_path / "ledger.duckdb"
    config = tmp_path / "req.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "input_uri": str(_questions(tmp_path / "q.jsonl", items)),
                "output_uri": f"s3://{bucket}/out",
                "ledger_path": str(ledger),
                "run_id": run_id,
                "shard_size": 1,
                "strategies": {"majority": {"n": [2]}, "budget_forcing": None},
                # Each request waits ~0.3 s: the run lasts a few seconds.
                "engine": {"kind": "scripted", "accuracy": 0.7, "delay_s": 0.3},
            }
        )
    )
    env = S3_CREDENTIALS | {
        "AWS_ENDPOINT_URL": s3_server.endpoint,
        "TTSCALE_RETRY_ATTEMPTS": "2",
        "TTSCALE_HOME": str(tmp_path / "home"),  # the run's log goes under it (an s3:// output)
        "PREFECT_API_URL": os.environ.get("PREFECT_API_URL", ""),
    }
    prefix = f"out/runs/{run_id}/shards/"

    run = _start_run(config, tmp_path, env)
    try:
        _wait_until(lambda: bool(s3_server.parts(bucket, prefix)), 120, "the run's first part")
        before = s3_server.parts(bucket, prefix)
    except TimeoutError:
        run.kill()
        pytest.fail("no part was written:\n" + "".join(run.communicate()))
    s3_server.stop()
    code, text = _finish(run)
    line = _assert_one_error_line(text, 4, code, s3_server.endpoint)
    assert "gave up after 2 attempts" in line
    assert "ttscale-test-secret" not in text
    assert run_id not in _ledger_runs(ledger)  # nothing ingested
    assert 0 < len(_settled_records(before)) < items, "the run ended before the stop"

    if not s3_server.persistent:
        pytest.skip("moto keeps objects in memory: no resume after a restart (install weed)")
    s3_server.start()  # the same folder and ports: the parts are still there
    assert all(key in s3_server.parts(bucket, prefix) for key in before)
    code, text = _finish(_start_run(config, tmp_path, env))
    assert code == 0, text
    assert _added_units(text) == items
    _assert_exactly_once(before, s3_server.parts(bucket, prefix), ledger, run_id, items)
