"""`ttscale run` as a user runs it: a subprocess, its exit code, what it prints, and how fast.

Every documented exit code comes from the matching bad request or bad input, before any engine or
Prefect starts. The success path runs a tiny batch on the scripted engine (a unit test of the
command's plumbing, not a reported figure).
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
DEMO = REPO / "ttscale" / "data" / "demo.jsonl"


def ttscale(
    *args: str, cwd: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess:
    environ = os.environ | {"AWS_EC2_METADATA_DISABLED": "true"} | (env or {})
    return subprocess.run(
        [sys.executable, "-m", "ttscale.cli", *args],
        cwd=cwd,
        env=environ,
        capture_output=True,
        text=True,
        timeout=300,
    )


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def no_credentials(tmp_path: Path) -> dict[str, str]:
    empty = tmp_path / "empty-aws"
    empty.write_text("")
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    return env | {
        "AWS_SHARED_CREDENTIALS_FILE": str(empty),
        "AWS_CONFIG_FILE": str(empty),
        "AWS_EC2_METADATA_DISABLED": "true",
    }


def assert_one_line_error(result: subprocess.CompletedProcess, code: int, words: str) -> None:
    output = result.stdout + result.stderr
    assert result.returncode == code, output
    assert "Traceback" not in output
    assert words in output
    assert len(output.strip().splitlines()) == 1, output


def test_bad_request_exits_2(tmp_path: Path) -> None:
    result = ttscale("run", "--input", str(DEMO), "--strategy", "nope:n=1", cwd=tmp_path)
    assert_one_line_error(result, 2, "unknown kind 'nope'")
    result = ttscale("run", "--input", str(DEMO), "--strategy", "esc:window=0", cwd=tmp_path)
    assert_one_line_error(result, 2, "strategies.esc.window")
    # An imported pool's stored scores exist only in replay: refused before any generation.
    config = tmp_path / "req.yaml"
    out = tmp_path / "out"
    config.write_text(
        yaml.safe_dump(
            {
                "input_uri": str(DEMO),
                "output_uri": f"file://{out}",
                "ledger_path": str(out / "ledger.sqlite"),
                "engine": {"kind": "scripted"},
            }
        )
    )
    result = ttscale(
        "run", "--config", str(config), "--strategy", "best_of_n:n=2,scorer.kind=stored",
        cwd=tmp_path,
    )  # fmt: skip
    assert_one_line_error(result, 2, "scorer 'stored'")
    assert not out.exists()


def test_missing_and_empty_input_exit_3(tmp_path: Path) -> None:
    result = ttscale("run", "--input", str(tmp_path / "none.jsonl"), cwd=tmp_path)
    assert_one_line_error(result, 3, "no such input")
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"id": "a"}\nnot json\n')
    result = ttscale("run", "--input", str(bad), cwd=tmp_path)
    assert_one_line_error(result, 3, "no valid question")


def test_missing_credentials_exit_4(tmp_path: Path) -> None:
    result = ttscale(
        "run", "--input", "s3://bucket/q.jsonl", cwd=tmp_path, env=no_credentials(tmp_path)
    )
    assert_one_line_error(result, 4, "AWS_ACCESS_KEY_ID")


def test_unreachable_endpoint_exits_5(tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{closed_port()}/v1"
    result = ttscale(
        "run", "--input", str(DEMO), "--engine", "openai", "--base-url", url, "--model", "m",
        cwd=tmp_path,
    )  # fmt: skip
    assert_one_line_error(result, 5, "unreachable")


def test_missing_model_exits_6(tmp_path: Path) -> None:
    result = ttscale(
        "run", "--input", str(DEMO), "--model", str(tmp_path / "nomodel"), cwd=tmp_path
    )
    assert_one_line_error(result, 6, "not a local model folder")
    unprepared = ttscale(
        "run", "--input", str(DEMO), cwd=tmp_path, env={"TTSCALE_HOME": str(tmp_path / "home")}
    )
    assert_one_line_error(unprepared, 6, "ttscale models prepare")


def test_unusable_ledger_exits_7(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    config = tmp_path / "req.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "input_uri": str(DEMO),
                "ledger_path": str(blocker / "ledger.duckdb"),
                "engine": {"kind": "scripted"},
            }
        )
    )
    assert_one_line_error(ttscale("run", "--config", str(config), cwd=tmp_path), 7, "ledger")


def test_version() -> None:
    result = ttscale("--version", cwd=REPO)
    assert result.returncode == 0 and result.stdout.startswith("ttscale ")


def test_run_prints_results_and_lists_runs(tmp_path: Path) -> None:
    config = tmp_path / "req.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "input_uri": str(DEMO),
                "output_uri": f"file://{tmp_path / 'out'}",
                "ledger_path": str(tmp_path / "out" / "ledger.duckdb"),
                "engine": {"kind": "scripted", "accuracy": 0.7},
            }
        )
    )
    result = ttscale(
        "run", "--config", str(config), "--limit", "3",
        "--strategy", "majority:n=1,2", "--strategy", "esc:n=4,window=2",
        cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    assert "Results: accuracy with 95% bootstrap CI" in out and "Recommended cutoffs" in out
    for strategy, budget in [("majority", 1), ("majority", 2), ("esc", 4)]:
        assert any(line.split()[:2] == [strategy, str(budget)] for line in out.splitlines())
    log = Path(out.split("log: ", 1)[1].split()[0])
    assert log.is_file() and log.stat().st_size > 0
    # Library logs went to the file, not the terminal; the run itself never started Prefect.
    assert "prefect" not in (result.stdout + result.stderr).lower().replace("prefect-", "")
    assert "ttscale.service" in log.read_text() and "prefect" not in log.read_text().lower()
    assert len((result.stdout + result.stderr).splitlines()) < 40

    listed = ttscale(
        "runs", "--ledger", str(tmp_path / "out" / "ledger.duckdb"), "--format", "json",
        cwd=tmp_path,
    )  # fmt: skip
    runs = json.loads(listed.stdout)
    assert len(runs) == 1 and runs[0]["status"] == "completed"
    assert runs[0]["items"] == 3 and runs[0]["units"] == 3 * 3
