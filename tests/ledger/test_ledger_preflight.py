"""A ledger that cannot be written stops ``ttscale run`` with exit 7 and one line, before any
generation: an unreachable catalog, a wrong password, a folder without permission, an S3 data
path whose credentials are refused.

Each case is a real ``ttscale run`` subprocess on the scripted engine; "before any generation"
is checked on disk: no shard part was written under the output.
"""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
DEMO = REPO / "ttscale" / "data" / "demo.jsonl"
AS_ROOT = os.geteuid() == 0
_CAPS = "-dac_override,-dac_read_search"
WITHOUT_DAC_OVERRIDE = ["setpriv", f"--inh-caps={_CAPS}", f"--bounding-set={_CAPS}", "--"]


def _closed_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def ttscale_run(
    cwd: Path,
    ledger: str | None,
    out: Path,
    env: dict[str, str] | None = None,
    without_override: bool = False,
) -> subprocess.CompletedProcess:
    """``ttscale run`` of 2 demo items in ``cwd``, its config and outputs under ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    out.chmod(0o777)
    (out / "scripted.yaml").write_text("engine: {kind: scripted}\n")
    args = ["run", "--config", str(out / "scripted.yaml"), "--input", str(DEMO)]
    args += ["--majority", "1", "--limit", "2", "--output", f"file://{out}"]
    args += ["--ledger", ledger] if ledger else []
    environ = os.environ | {"AWS_EC2_METADATA_DISABLED": "true", "PYTHONPATH": str(REPO)}
    # Root writes through any permission bit: the no-permission cases drop that capability.
    prefix = WITHOUT_DAC_OVERRIDE if without_override and AS_ROOT else []
    return subprocess.run(
        [*prefix, sys.executable, "-m", "ttscale.cli", *args],
        cwd=cwd,
        env=environ | (env or {}),
        capture_output=True,
        text=True,
        timeout=300,
    )


def assert_exit_7_before_generation(
    result: subprocess.CompletedProcess, out: Path, *words: str
) -> None:
    output = (result.stdout + result.stderr).strip()
    assert result.returncode == 7, output
    assert len(output.splitlines()) == 1 and "Traceback" not in output, output
    for word in words:
        assert word in output, output
    assert list(out.rglob("shards/*")) == []


@pytest.fixture
def shared_workdir(tmp_path: Path) -> Path:
    """A folder for the no-permission cases (as root: run without the capability to override
    permission bits, so they apply to root as to anyone)."""
    if AS_ROOT and shutil.which("setpriv") is None:
        pytest.skip("running as root without setpriv: cannot drop CAP_DAC_OVERRIDE")
    return tmp_path


def _read_only(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    path.chmod(
        stat.S_IRUSR | stat.S_IXUSR | stat.S_IRGRP | stat.S_IXGRP | stat.S_IROTH | stat.S_IXOTH
    )
    return path


def test_an_unreachable_catalog_exits_7(tmp_path: Path) -> None:
    ledger = (
        f"ducklake:postgres:dbname=lake host=127.0.0.1 port={_closed_port()} user=postgres "
        f"password=secret data_path={tmp_path / 'data'}"
    )
    result = ttscale_run(tmp_path, ledger, tmp_path / "out")
    assert_exit_7_before_generation(result, tmp_path / "out", "cannot open ledger", "password=***")
    assert "secret" not in result.stderr + result.stdout


def test_a_wrong_password_exits_7(postgres_server: Callable[[], str], tmp_path: Path) -> None:
    conninfo = postgres_server()
    data = f"data_path={tmp_path / 'data'}"
    # The same lake with the right password works, given as the service gives it: PGPASSWORD
    # (libpq), so no password is in the ledger URI that each run's request stores.
    without, _, password = conninfo.rpartition(" password=")
    right = ttscale_run(
        tmp_path, f"ducklake:postgres:{without} {data}", tmp_path / "right",
        env={"PGPASSWORD": password},
    )  # fmt: skip
    assert right.returncode == 0, right.stderr[-2000:]
    wrong = conninfo.replace("password=", "password=not-")
    result = ttscale_run(tmp_path, f"ducklake:postgres:{wrong} {data}", tmp_path / "out")
    assert_exit_7_before_generation(result, tmp_path / "out", "password authentication failed")


def test_the_default_ledger_in_a_folder_without_permission_exits_7(shared_workdir: Path) -> None:
    # Run in a read-only folder: the default ttscale-out/ledger.sqlite cannot be created there.
    cwd, out = _read_only(shared_workdir / "ro"), shared_workdir / "out"
    result = ttscale_run(cwd, None, out, without_override=True)
    assert_exit_7_before_generation(result, out, "ledger folder", "not writable")
    # The same run where the user may write: it completes (the failure above was permission).
    cwd.chmod(0o777)
    result = ttscale_run(cwd, None, shared_workdir / "out2", without_override=True)
    assert result.returncode == 0, result.stderr[-2000:]


def test_a_data_path_without_permission_exits_7(shared_workdir: Path) -> None:
    # The catalog's folder is writable; the Parquet files' folder is not.
    data = _read_only(shared_workdir / "data")
    ledger = f"ducklake:sqlite:{shared_workdir / 'out' / 'l.sqlite'} data_path={data}"
    out = shared_workdir / "out"
    result = ttscale_run(shared_workdir, ledger, out, without_override=True)
    assert_exit_7_before_generation(result, out, "ledger data path", "not writable")
    assert not (out / "l.sqlite").exists()  # nothing was created before the check refused


@pytest.fixture(scope="module")
def s3_refusing_every_key() -> Iterator[str]:
    """A moto S3 server in its own process that checks credentials (IAM auth enforced from the
    first request, no keys created): every access key is refused, as a wrong key is by S3."""
    port = _closed_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        env=os.environ | {"INITIAL_NO_AUTH_ACTION_COUNT": "0"},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        _wait_for_port(port)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.terminate()
        server.wait(timeout=30)


def _wait_for_port(port: int) -> None:
    import socket
    import time

    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise RuntimeError(f"moto server did not listen on port {port}")


def test_an_s3_data_path_with_refused_credentials_exits_7(
    s3_refusing_every_key: str, tmp_path: Path
) -> None:
    env = {
        "AWS_ENDPOINT_URL": s3_refusing_every_key,
        "AWS_ACCESS_KEY_ID": "AKIAWRONGKEY",
        "AWS_SECRET_ACCESS_KEY": "wrong",
        "AWS_DEFAULT_REGION": "us-east-1",
    }
    ledger = f"ducklake:sqlite:{tmp_path / 'l.sqlite'} data_path=s3://bucket/lake/"
    result = ttscale_run(tmp_path, ledger, tmp_path / "out", env=env)
    assert_exit_7_before_generation(result, tmp_path / "out", "s3://bucket/lake/", "403")


def test_a_postgres_lakes_stored_data_path_without_permission_exits_7(
    postgres_server: Callable[[], str], shared_workdir: Path
) -> None:
    # The catalog remembers its data path: a run that names only the catalog is checked there.
    conninfo, data = postgres_server(), shared_workdir / "data"
    from ttscale.ledger import Ledger

    Ledger(f"ducklake:postgres:{conninfo} data_path={data}").close()
    _read_only(data)
    out = shared_workdir / "out"
    result = ttscale_run(
        shared_workdir, f"ducklake:postgres:{conninfo}", out, without_override=True
    )
    assert_exit_7_before_generation(result, out, f"ledger data path {data}", "not writable")
