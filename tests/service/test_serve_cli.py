"""`ttscale serve` refuses to run without a Prefect server instead of serving into a throwaway
ephemeral one (its deployments would vanish with the process, unreachable from any UI or client)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from service_helpers import scaled

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("api_url", [None, ""], ids=["unset", "empty"])
def test_serve_without_api_url_fails_in_one_line(tmp_path: Path, api_url: str | None) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    # A fresh PREFECT_HOME: no profile that could carry an API URL.
    env |= {"PREFECT_HOME": str(tmp_path / "prefect-home"), "DO_NOT_TRACK": "1"}
    if api_url is not None:
        env["PREFECT_API_URL"] = api_url
    proc = subprocess.run(
        [sys.executable, "-m", "ttscale.cli", "serve"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=scaled(60),
        check=False,
    )
    assert proc.returncode == 2, proc.stdout + proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("error: PREFECT_API_URL is not set"), lines
    assert "ttscale server" in lines[0]
    assert proc.stdout == ""
