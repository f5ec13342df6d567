from __future__ import annotations

import json

import duckdb
import pytest
from synthetic_ledger import synthetic_ledger

from ttscale.analysis.synthetic import PlantedCurve, SyntheticLedgerSpec
from ttscale.errors import ConfigError
from ttscale.ledger.readers import read_report_data
from ttscale.ledger.report_data import build_report_from_ledger
from ttscale.reports import Report, ReportSettings, build_report, publish_report, render_markdown
from ttscale.storage import LocalStore

SPEC = SyntheticLedgerSpec(
    curves=(
        PlantedCurve("majority", (1, 2, 4, 8), f_max=0.8, p=0.4),
        PlantedCurve("budget_forcing", (256, 1024, 4096), f_max=0.7, p=0.6),
    ),
    slices=(("gsm8k", "en"), ("mgsm", "sw")),
    items_per_slice=60,
    seed=3,
)


@pytest.fixture()
def ledger(tmp_path) -> duckdb.DuckDBPyConnection:
    return synthetic_ledger(SPEC, tmp_path / "l.duckdb")


def test_summary_table_matches_the_call_rows(ledger: duckdb.DuckDBPyConnection) -> None:
    report = build_report_from_ledger(
        ledger, SPEC.run_id, ReportSettings(price_per_million_tokens=2.0)
    )
    expected = ledger.execute(
        "SELECT d.strategy, d.budget, count(*), avg(d.correct::INT), "
        "       sum(s.completion_tokens), sum(s.prompt_tokens) "
        "FROM item_decisions d JOIN item_spend s USING (run_id, item_id, strategy, budget) "
        "GROUP BY ALL ORDER BY 1, 2"
    ).fetchall()
    got = [
        (
            r.strategy,
            r.budget,
            r.items,
            r.accuracy,
            r.total_completion_tokens,
            r.total_prompt_tokens,
        )
        for r in report.summary
    ]
    assert got == [
        tuple(pytest.approx(v) if isinstance(v, float) else v for v in row) for row in expected
    ]
    (calls,) = ledger.execute("SELECT count(*) FROM generation_calls").fetchone() or (0,)
    assert report.totals.calls == calls
    point = report.slices[0].curves[0]
    assert point.usd_per_item == pytest.approx(point.mean_completion_tokens * 2.0 / 1e6)
    assert point.accuracy_low <= point.accuracy <= point.accuracy_high
    assert {r.rule for s in report.slices for r in s.recommendations} == {
        "marginal_gain",
        "utility",
    }


def test_report_is_reproducible_and_round_trips_through_json(ledger) -> None:
    first = build_report_from_ledger(ledger, SPEC.run_id)
    second = build_report_from_ledger(ledger, SPEC.run_id)
    assert first.slices == second.slices
    again = Report.model_validate_json(first.model_dump_json())
    assert again.slices == first.slices
    assert json.loads(first.model_dump_json())["run"]["run_id"] == SPEC.run_id


def test_markdown_has_the_basic_table(ledger) -> None:
    text = render_markdown(build_report_from_ledger(ledger, SPEC.run_id))
    assert "| strategy | budget | items | accuracy |" in text
    assert "| majority | 8 | 120 |" in text
    assert "Inverse scaling" in text and "Saturation" in text


def test_unknown_run_is_a_config_error(ledger) -> None:
    with pytest.raises(ConfigError):
        build_report_from_ledger(ledger, "no-such-run")


def test_settings_are_validated() -> None:
    with pytest.raises(ValueError):
        ReportSettings(bootstrap_resamples=100)


def test_publish_writes_the_renderings_and_the_policy(ledger, tmp_path) -> None:
    store = LocalStore(tmp_path / "store")
    uris = publish_report(build_report_from_ledger(ledger, SPEC.run_id), store, "reports/run-1")
    assert set(uris) == {"json", "markdown", "html", "policy"}
    assert b"ttscale.policy/v1" in store.read_bytes("reports/run-1/policy.json")
    assert store.read_bytes("reports/run-1/report.json").startswith(b"{")
    assert b"<svg" in store.read_bytes("reports/run-1/report.html")


def test_build_needs_no_connection_once_the_data_is_read(ledger) -> None:
    data = read_report_data(ledger, SPEC.run_id)
    ledger.close()
    report = build_report(data)
    assert report.run.run_id == SPEC.run_id
    assert report.totals.calls > 0 and report.slices


def test_the_data_must_hold_as_many_decline_examples_as_shown(ledger) -> None:
    data = read_report_data(ledger, SPEC.run_id, decline_examples=1)
    with pytest.raises(ValueError, match="decline examples"):
        build_report(data, ReportSettings(decline_examples=2))
    assert build_report(data, ReportSettings(decline_examples=1)).slices


def test_decline_candidates_cover_each_consecutive_budget_pair_once_per_item(ledger) -> None:
    data = read_report_data(ledger, SPEC.run_id, decline_examples=2)
    pairs = {(c.strategy, c.lower_budget, c.higher_budget) for c in data.decline_candidates}
    assert pairs <= {
        ("majority", 1, 2),
        ("majority", 2, 4),
        ("majority", 4, 8),
        ("budget_forcing", 256, 1024),
        ("budget_forcing", 1024, 4096),
    }
    per_pair: dict[tuple[str, str, str, int], list[str]] = {}
    for c in data.decline_candidates:
        per_pair.setdefault((c.dataset, c.language, c.strategy, c.lower_budget), []).append(
            c.item_id
        )
    assert all(len(ids) <= 2 and ids == sorted(ids) for ids in per_pair.values())
