"""The ttscale-batch flow under a real (temporary) Prefect API, on the scripted engine."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from ledger_helpers import open_ledger

from flows.batch import ttscale_batch
from ttscale.schemas import BatchRequest

LINES = [
    '{"id": "a", "question": "What is 3 plus 4?", "answer": "7", "dataset": "arithmetic"}',
    '{"id": "b", "question": "What is 10 minus 4?", "answer": "6", "dataset": "arithmetic"}',
    "{oops",
    '{"id": "c", "question": "What is 2 times 4?", "answer": "8"}',
    '{"id": "a", "question": "What is 1 plus 1?", "answer": "2"}',
    '{"id": "d", "answer": "2"}',
]


def test_batch_flow_end_to_end_and_rerun(
    prefect_harness: None, tmp_path: Path, write_jsonl: Callable[[Path, list[str]], Path]
) -> None:
    request = BatchRequest.model_validate(
        {
            "input_uri": str(write_jsonl(tmp_path / "in.jsonl", LINES)),
            "output_uri": f"file://{tmp_path}/out",
            "ledger_path": str(tmp_path / "out" / "ledger.duckdb"),
            "engine": {"kind": "scripted"},
            "strategies": [
                {"kind": "majority", "n": [1, 3]},
                {"kind": "budget_forcing", "budgets_tokens": [8, 32]},
            ],
            "shard_size": 2,
        }
    )
    first = ttscale_batch(request)
    assert first["items"] == 3 and first["bad_rows"] == 3 and first["units_added"] == 12
    errors = Path(first["errors_uri"].removeprefix("file://")).read_text().splitlines()
    assert len(errors) == 3 and all('"line"' in e and '"reason"' in e for e in errors)
    for uri in first["report"].values():
        assert Path(uri.removeprefix("file://")).stat().st_size > 0

    from prefect.artifacts import Artifact

    table = Artifact.get(f"recommendations-{first['run_id']}")
    assert table is not None and "budget" in str(table.data)
    summary = Artifact.get(f"report-{first['run_id']}")
    assert summary is not None and "Cost–accuracy report" in str(summary.data)

    second = ttscale_batch(request)  # same request → same run → nothing doubled
    assert second["run_id"] == first["run_id"]
    assert second["units_added"] == 0 and second["calls_added"] == 0
    assert second["totals"] == first["totals"]
    markdown = Path(first["report"]["markdown"].removeprefix("file://")).read_text()
    assert "Scripted test engine" in markdown

    con = open_ledger(first["ledger"])
    calls, tokens = con.execute(
        "SELECT count(*), sum(completion_tokens) FROM generation_calls"
    ).fetchone()
    assert calls == first["calls_added"] and tokens == first["totals"]["completion_tokens"]
    (mismatch,) = con.execute(
        "SELECT count(*) FROM item_decisions d JOIN item_spend s USING (run_id, item_id, strategy, budget) "
        "WHERE d.completion_tokens <> s.completion_tokens OR d.calls <> s.calls"
    ).fetchone()
    assert mismatch == 0
    (bad,) = con.execute("SELECT count(*) FROM input_errors").fetchone()
    assert bad == 3


def test_the_report_artifact_shows_policy_changes_since_the_previous_run(
    prefect_harness: None, tmp_path: Path
) -> None:
    from prefect.artifacts import Artifact

    from ttscale.ledger.report_data import build_report_from_ledger
    from ttscale.reports.policy import build_policy
    from ttscale.reports.policy_diff import diff_policies

    source = tmp_path / "in.jsonl"
    source.write_text(
        "".join(
            f'{{"id": "q{i}", "question": "What is {i} plus {i % 7}?", "answer": "{i + i % 7}"}}\n'
            for i in range(40)
        )
    )

    def run(run_id: str, accuracy: float) -> dict[str, object]:
        return ttscale_batch(
            BatchRequest.model_validate(
                {
                    "input_uri": str(source),
                    "output_uri": f"file://{tmp_path}/out",
                    "ledger_path": str(tmp_path / "ledger.duckdb"),
                    "run_id": run_id,
                    "engine": {"kind": "scripted", "accuracy": accuracy},
                    "strategies": [
                        {"kind": "majority", "n": [1, 3, 5]},
                        {"kind": "budget_forcing", "budgets_tokens": [8, 32]},
                    ],
                    "report": {"min_items": 10},
                }
            )
        )

    run("nightly-1", 0.35)
    first = Artifact.get("report-nightly-1")
    assert first is not None and "First run of its kind: nothing to compare" in str(first.data)

    second = run("nightly-2", 0.9)
    artifact = Artifact.get("report-nightly-2")
    assert artifact is not None
    markdown = str(artifact.data)
    assert "## Policy changes since nightly-1 (" in markdown
    with open_ledger(second["ledger"]) as con:
        before, after = (
            build_policy(build_report_from_ledger(con, r)) for r in ("nightly-1", "nightly-2")
        )
    diff = diff_policies(before, after)
    flagged = [s for s in diff.slices if s.changed]
    assert flagged
    for s in flagged:
        assert f"⚠ **{s.dataset}/{s.language}**: {s.changes[0].note}" in markdown


def test_a_failed_policy_diff_does_not_fail_the_run(
    prefect_harness: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from prefect.artifacts import Artifact

    from ttscale import service

    def broken(*args: object) -> None:
        raise RuntimeError("ledger busy")

    monkeypatch.setattr(service, "policy_changes", broken)
    source = tmp_path / "in.jsonl"
    source.write_text(LINES[0] + "\n" + LINES[1] + "\n")
    result = ttscale_batch(
        BatchRequest.model_validate(
            {
                "input_uri": str(source),
                "output_uri": f"file://{tmp_path}/out",
                "ledger_path": str(tmp_path / "ledger.duckdb"),
                "run_id": "diff-fails",
                "engine": {"kind": "scripted"},
                "strategies": [{"kind": "majority", "n": [1]}],
            }
        )
    )
    assert result["items"] == 2
    artifact = Artifact.get("report-diff-fails")
    assert artifact is not None and "Policy changes" not in str(artifact.data)
