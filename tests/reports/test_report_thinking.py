"""The report's samples × thinking-tokens table: one row per language, strategy and budget of the
units that probed their thinking, read from a real run's ledger and checked against the
strategies' own decision records."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ledger_helpers import open_ledger

from ttscale.ledger.report_data import build_report_from_ledger
from ttscale.reports.html import render_html
from ttscale.reports.markdown import render_markdown
from ttscale.schemas import BatchRequest

THINKING = {"stop": "probe", "probe_every": 16, "k": 2, "cap": 2000}


def _items(path: Path) -> str:
    rows = [
        {
            "id": f"{language}-{i}",
            "question": f"What is {11 + i} plus {20 + 3 * i}?",
            "answer": str(31 + 4 * i),
            "language": language,
            "dataset": "mgsm",
        }
        for language in ("de", "en")
        for i in range(3 if language == "en" else 2)
    ]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return str(path)


def test_probed_units_get_a_row_per_language_with_samples_and_thinking(tmp_path: Path) -> None:
    from ttscale.service import resolve_run, run_batch

    request = BatchRequest.model_validate(
        {
            "input_uri": _items(tmp_path / "items.jsonl"),
            "output_uri": f"file://{tmp_path}/out",
            "ledger_path": str(tmp_path / "ledger.duckdb"),
            "engine": {"kind": "scripted", "script": "settling", "accuracy": 1.0},
            "strategies": [
                {"kind": "majority", "n": [1, 3], "thinking": THINKING},
                {"kind": "budget_forcing", "budgets_tokens": [64]},
                {"kind": "probe_stop", "budgets_tokens": [2000], "probe_every": 16},
            ],
            "run_id": "thinking-axes",
        }
    )
    result = run_batch(resolve_run(request))
    con = open_ledger(result["ledger"])
    report = build_report_from_ledger(con, "thinking-axes")
    rows = {(r.language, r.strategy, r.budget): r for r in report.thinking_axes}
    # Budget forcing never probes: it has no row.
    assert sorted(rows) == [
        (lang, strategy, budget)
        for lang in ("de", "en")
        for strategy, budget in (("majority", 1), ("majority", 3), ("probe_stop", 2000))
    ]
    decisions = con.execute(
        "SELECT i.language, d.strategy, d.budget, d.samples_used, CAST(d.detail_json AS VARCHAR) "
        "FROM item_decisions d JOIN items i USING (run_id, item_id) WHERE d.run_id = ? "
        "AND d.strategy <> 'budget_forcing'",
        ["thinking-axes"],
    ).fetchall()
    expected: dict[tuple[str, str, int], list[tuple[int, float]]] = {}
    for language, strategy, budget, samples, detail_json in decisions:
        detail: dict[str, Any] = json.loads(detail_json)
        if strategy == "probe_stop":
            per_sample = float(detail["thinking_tokens"])
        else:
            per_sample = detail["thinking"]["mean_thinking_tokens"]
        expected.setdefault((language, strategy, budget), []).append((samples, per_sample))
    for key, row in rows.items():
        seen = expected[key]
        assert row.items == len(seen) == (2 if key[0] == "de" else 3)
        assert (
            row.mean_samples
            == sum(s for s, _ in seen) / len(seen)
            == (1 if key[1] == "probe_stop" else key[2])
        )
        assert row.mean_thinking_tokens_per_sample == sum(t for _, t in seen) / len(seen) > 0
        assert row.mean_probe_tokens_per_sample > 0 and row.mean_probes_per_sample >= 2
    markdown, html = render_markdown(report), render_html(report)
    assert "## Samples × thinking tokens per sample (probed thinking)" in markdown
    assert "| mgsm | de | probe_stop | 2000 | 2 |" in markdown
    assert "Samples × thinking tokens per sample" in html
