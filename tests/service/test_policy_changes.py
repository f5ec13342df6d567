"""A run's policy against the previous run of its family, on real scripted runs in one ledger."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ledger_helpers import open_ledger
from service_helpers import question_lines
from typer.testing import CliRunner

from ttscale.cli import app
from ttscale.ledger.previous_run import previous_run
from ttscale.ledger.report_data import build_report_from_ledger
from ttscale.reports.policy import build_policy
from ttscale.reports.policy_diff import diff_policies
from ttscale.schemas import BatchRequest
from ttscale.service import policy_changes, resolve_run, run_batch

STRATEGIES = [
    {"kind": "majority", "n": [1, 3, 5]},
    {"kind": "budget_forcing", "budgets_tokens": [8, 32]},
]


def _batch(tmp_path: Path, run_id: str, accuracy: float, **fields: Any) -> dict[str, Any]:
    source = tmp_path / "questions.jsonl"
    if not source.exists():
        source.write_text("".join(line + "\n" for line in question_lines(40, seed=5)))
    request = BatchRequest.model_validate(
        {
            "input_uri": str(source),
            "output_uri": f"file://{tmp_path}/out",
            "ledger_path": str(tmp_path / "ledger.duckdb"),
            "run_id": run_id,
            "engine": {"kind": "scripted", "accuracy": accuracy},
            "strategies": STRATEGIES,
            "report": {"min_items": 10},
        }
        | fields
    )
    return run_batch(resolve_run(request))


def _policy(ledger: str, run_id: str) -> dict[str, Any]:
    with open_ledger(ledger) as con:
        return build_policy(build_report_from_ledger(con, run_id))


def test_the_second_run_is_diffed_against_the_first_of_its_family(tmp_path: Path) -> None:
    ledger = str(tmp_path / "ledger.duckdb")
    _batch(tmp_path, "weak", 0.35, seed=1)
    first = policy_changes(ledger, "weak")
    assert first.previous is None and first.diff is None
    assert "First run of its kind: nothing to compare" in first.markdown()

    # Another family in between (other strategies): never taken as the previous run.
    _batch(tmp_path, "other", 0.9, strategies=STRATEGIES[:1])
    _batch(tmp_path, "strong", 0.9, seed=2)
    with open_ledger(ledger) as con:
        found = previous_run(con, "strong")
        assert found is not None and found.run_id == "weak"
        assert previous_run(con, "other") is None

    changes = policy_changes(ledger, "strong")
    assert changes.previous is not None and changes.previous.run_id == "weak"
    assert changes.diff == diff_policies(_policy(ledger, "weak"), _policy(ledger, "strong"))
    diff = changes.diff
    assert diff.changed and (diff.previous_run_id, diff.current_run_id) == ("weak", "strong")
    assert diff.run_changes == []  # same engine name and prices: only the slices moved
    flagged = [s for s in diff.slices if s.changed]
    assert flagged, "a much stronger engine moves the recommendation or its accuracy"

    text = changes.markdown()
    date = f"{changes.previous.created_at:%Y-%m-%d %H:%M} UTC"
    assert text.startswith(f"## Policy changes since weak ({date})")
    for s in flagged:
        assert f"⚠ **{s.dataset}/{s.language}**: {s.changes[0].note}" in text

    # The CLI: --previous finds the same run; --against names it; both print the same diff.
    runner = CliRunner()
    found_json = runner.invoke(app, ["policy", "strong", "--previous", "--ledger", ledger])
    assert found_json.exit_code == 0, found_json.output
    printed = json.loads(found_json.stdout)
    assert printed["previous_run_id"] == "weak" and printed["changed"] is True
    assert printed["slices"] == diff.as_json()["slices"]
    against = runner.invoke(app, ["policy", "strong", "--against", "weak", "--ledger", ledger])
    assert against.exit_code == 0, against.output
    assert json.loads(against.stdout)["slices"] == printed["slices"]
    unknown = runner.invoke(app, ["policy", "strong", "--against", "nope", "--ledger", ledger])
    assert unknown.exit_code == 2 and "nope" in unknown.output
    both = runner.invoke(
        app, ["policy", "strong", "--against", "weak", "--previous", "--ledger", ledger]
    )
    assert both.exit_code == 2 and "not both" in both.output
