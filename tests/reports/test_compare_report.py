"""The comparison built from synthetic runs: alignment, missing slices, escaping, no network."""

from __future__ import annotations

import re

from synthetic_ledger import synthetic_ledger, write_synthetic_ledger

from ttscale.analysis.synthetic import PlantedCurve, SyntheticLedgerSpec
from ttscale.ledger.compare_data import latest_run_ids, reports_for_runs
from ttscale.reports.compare import build_comparison, comparison_id
from ttscale.reports.compare_render import render_comparison_html, render_comparison_markdown

HOSTILE = '<script>alert(1)</script> & "quotes" {index}'
CURVES = (PlantedCurve("majority", (1, 2, 4), f_max=0.8, p=0.45),)


def _two_runs(tmp_path, first: SyntheticLedgerSpec, second: SyntheticLedgerSpec):
    con = synthetic_ledger(first, tmp_path / "l.duckdb")
    write_synthetic_ledger(con, second)
    return con


def test_hostile_run_ids_datasets_and_questions_are_escaped(tmp_path) -> None:
    first = SyntheticLedgerSpec(
        curves=CURVES,
        slices=(("<img src=x onerror=alert(2)>", "en"), ("<img src=x onerror=alert(2)>", "de")),
        items_per_slice=40,
        question_template=HOSTILE,
        run_id="<b>run</b>",
    )
    second = SyntheticLedgerSpec(
        curves=CURVES, items_per_slice=40, seed=3, run_id="<script>alert(1)</script>"
    )
    con = _two_runs(tmp_path, first, second)
    comparison = build_comparison(reports_for_runs(con, [first.run_id, second.run_id]))
    html = render_comparison_html(comparison)
    assert "<b>run</b>" not in html and "&lt;b&gt;run&lt;/b&gt;" in html
    assert "<script>alert(1)" not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "<img" not in html
    assert len(re.findall(r"<script>", html)) == 1  # the page's own
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", html)
    assert "@import" not in html and "url(" not in html
    markdown = render_comparison_markdown(comparison)
    assert "<script>" not in markdown and "<b>" not in markdown and "<img" not in markdown


def test_slices_align_and_a_run_without_a_slice_says_so(tmp_path) -> None:
    en_only = SyntheticLedgerSpec(curves=CURVES, items_per_slice=40, seed=1, run_id="a")
    both = SyntheticLedgerSpec(
        curves=CURVES,
        slices=(("synthetic", "en"), ("synthetic", "fr")),
        items_per_slice=40,
        seed=2,
        run_id="b",
    )
    con = _two_runs(tmp_path, en_only, both)
    reports = reports_for_runs(con, ["a", "b"])
    comparison = build_comparison(reports)
    assert comparison.compare_id == comparison_id(["a", "b"]) != comparison_id(["b", "a"])
    assert [(s.dataset, s.language) for s in comparison.slices] == [
        ("synthetic", "en"),
        ("synthetic", "fr"),
    ]
    fr = comparison.side_by_side[1]
    assert fr.cells[0] is None and fr.cells[1] is not None
    assert "not in this run" in render_comparison_markdown(comparison)
    # Curves are the runs' own points, unchanged.
    own = {(r.run.run_id, s.language, p.strategy, p.budget): p for r in reports for s in r.slices
           for p in s.curves}  # fmt: skip
    for s in comparison.slices:
        for curve in s.curves:
            for p in curve.points:
                assert own[(curve.run_id, s.language, curve.strategy, p.budget)] == p
    (table,) = comparison.crosslingual
    assert table.has_reference and [r.language for r in table.rows] == ["en", "fr"]
    assert latest_run_ids(con, 2) == ["a", "b"]
