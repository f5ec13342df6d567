"""The headline at the top of every report: what to set, per slice."""

from __future__ import annotations

import re

from synthetic_ledger import synthetic_ledger

from ttscale.analysis.synthetic import PlantedCurve, SyntheticLedgerSpec
from ttscale.ledger.report_data import build_report_from_ledger, report_settings
from ttscale.reports import render_markdown
from ttscale.reports.headline import headline_text, slice_headlines
from ttscale.reports.html import render_html
from ttscale.schemas import ReportOptions

# Demo-like: majority N ∈ {1, 2, 4, 8} and budget forcing B ∈ {32, 64, 128}, plus a small slice.
SPEC = SyntheticLedgerSpec(
    curves=(
        PlantedCurve("majority", (1, 2, 4, 8), f_max=0.8, p=0.45),
        PlantedCurve("budget_forcing", (32, 64, 128), f_max=0.7, p=0.5),
    ),
    slices=(("gsm8k", "en"), ("<b>x</b>", "sw")),
    items_per_slice=40,
    seed=11,
)


def test_headline_names_strategy_budget_accuracy_ci_and_tokens(tmp_path) -> None:
    con = synthetic_ledger(SPEC, tmp_path / "l.duckdb")
    report = build_report_from_ledger(
        con, SPEC.run_id, report_settings(ReportOptions(price_out=2.0))
    )
    heads = slice_headlines(report)
    assert [(h.dataset, h.language) for h in heads] == [
        (s.dataset, s.language) for s in report.slices
    ]
    recommended = [h for h in heads if h.strategy is not None]
    assert recommended, [h.withheld for h in heads]
    for h in recommended:
        s = next(s for s in report.slices if (s.dataset, s.language) == (h.dataset, h.language))
        (rule,) = [r for r in s.recommendations if r.rule == "marginal_gain"]
        assert (h.strategy, h.budget, h.accuracy) == (rule.strategy, rule.budget, rule.accuracy)
        assert h.usd_per_item == h.tokens_per_item * 2.0 / 1e6  # type: ignore[operator]
        text = headline_text(h)
        assert f"use {h.strategy} at budget {h.budget}" in text
        assert re.search(r"accuracy \d+\.\d% \(95% CI \d+\.\d%–\d+\.\d%\)", text), text
        assert re.search(r"[\d,]+ tokens/item, \$\d\.\d+/item", text), text
        assert "largest budget tried" in text or "saves" in text
    markdown, html = render_markdown(report), render_html(report)
    # At the top: before the run details and every table.
    assert markdown.index("## Headline") < markdown.index("## Run") < markdown.index("| strategy")
    assert html.index("Headline") < html.index("<table")
    for h in heads:
        assert headline_text(h).split(":")[0].replace("<b>x</b>", "&lt;b&gt;x&lt;/b&gt;") in html
    assert "<b>x</b>" not in html and "<b>x</b>" not in markdown


def test_headline_of_a_slice_without_evidence_says_why(tmp_path) -> None:
    spec = SyntheticLedgerSpec(
        curves=(PlantedCurve("majority", (1, 2, 4), f_max=0.8, p=0.45),),
        slices=(("gsm8k", "en"),),
        items_per_slice=10,
        seed=2,
    )
    report = build_report_from_ledger(synthetic_ledger(spec, tmp_path / "l.duckdb"), spec.run_id)
    (h,) = slice_headlines(report)
    assert h.strategy is None
    text = headline_text(h)
    assert text.startswith(
        "gsm8k/en (10 items): no recommendation, not enough evidence: 10 items, fewer than the "
        "30 a recommendation needs. Best measured, not recommended: "
    )
    assert text.endswith(" Needed: at least 30 items (has 10).")
    # What was measured is still shown: the most accurate point (fewest tokens among ties).
    (curves,) = [s.curves for s in report.slices]
    top = max(p.accuracy for p in curves)
    best = min((p for p in curves if p.accuracy == top), key=lambda p: p.mean_completion_tokens)
    assert f"{best.strategy} at budget {best.budget}: accuracy {100 * best.accuracy:.1f}%" in text
    assert f"{best.mean_completion_tokens:,.0f} tokens/item" in text
