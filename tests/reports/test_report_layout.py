"""The reports' charts at a desktop width (1280 px) and a phone's (375 px), in headless Chromium.

No chart overflows the viewport, the page does not scroll sideways, chart text stays legible,
and the legend names the strategies. ``TTSCALE_SCREENSHOTS=docs`` refreshes the README's
pictures (``docs/report-1280.png``, ``docs/report-375.png``, ``docs/compare-*.png``).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from browser import Chromium
from synthetic_ledger import synthetic_ledger, write_synthetic_ledger

from ttscale.analysis.synthetic import PlantedCurve, SyntheticLedgerSpec
from ttscale.ledger.compare_data import reports_for_runs
from ttscale.reports import render_html
from ttscale.reports.compare import build_comparison
from ttscale.reports.compare_render import render_comparison_html

SCREENSHOTS = os.environ.get("TTSCALE_SCREENSHOTS")
SLICES = (("mgsm", "en"), ("mgsm", "de"), ("mgsm", "sw"))
LAST_WEEK = SyntheticLedgerSpec(
    curves=(
        PlantedCurve("majority", (1, 2, 4, 8), f_max=0.8, p=0.45),
        PlantedCurve("budget_forcing", (32, 64, 128, 256), f_max=0.7, p=0.5),
    ),
    slices=SLICES,
    items_per_slice=60,
    seed=1,
    run_id="mgsm-last-week",
)
TONIGHT = SyntheticLedgerSpec(
    curves=(PlantedCurve("majority", (1, 2, 4, 8), f_max=0.9, p=0.5),),
    slices=SLICES,
    items_per_slice=60,
    seed=2,
    run_id="mgsm-tonight",
)
# Page metrics: viewport and page widths, charts outside the viewport, the smallest chart text.
MEASURE = """(() => {
  const vw = window.innerWidth, charts = [...document.querySelectorAll('svg.chart')];
  const texts = [...document.querySelectorAll('svg.chart text')];
  return {
    vw, scroll: document.documentElement.scrollWidth, charts: charts.length,
    overflowing: charts.filter(c => c.getBoundingClientRect().right > vw + 0.5).length,
    smallest_text_px: Math.min(...texts.map(t => parseFloat(getComputedStyle(t).fontSize)
      * c_scale(t))),
    legend: [...document.querySelectorAll('svg.chart text.legend')].map(t => t.textContent),
  };
  function c_scale(t) {
    const svg = t.ownerSVGElement;
    return svg.getBoundingClientRect().width / svg.viewBox.baseVal.width;
  }
})()"""


@pytest.fixture(scope="module")
def pages(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("pages")
    con = synthetic_ledger(LAST_WEEK, folder / "l.duckdb")
    write_synthetic_ledger(con, TONIGHT)
    reports = reports_for_runs(con, [LAST_WEEK.run_id, TONIGHT.run_id])
    (folder / "report.html").write_text(render_html(reports[0]), encoding="utf-8")
    comparison = render_comparison_html(build_comparison(reports))
    (folder / "compare.html").write_text(comparison, encoding="utf-8")
    return {"report": folder / "report.html", "compare": folder / "compare.html"}


@pytest.fixture(scope="module")
def chromium_binary() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        reason = "no chromium binary (apt-get install chromium)"
        if os.environ.get("CI"):
            pytest.fail(f"{reason}: CI must run the browser test")
        pytest.skip(reason)
    return found


# The part of each page a screenshot shows: a slice's recommendations and charts; the comparison's
# side-by-side table and first overlay (on a phone, the overlay).
SHOWN = {
    ("report", 1280): "section.slice",
    ("report", 375): "section.slice .charts",
    ("compare", 1280): "h1",
    ("compare", 375): "section.slice",
}


@pytest.mark.parametrize(("width", "height"), [(1280, 1600), (375, 1300)])
@pytest.mark.parametrize("name", ["report", "compare"])
def test_charts_fit_and_stay_legible(
    chromium_binary: str,
    pages: dict[str, Path],
    tmp_path: Path,
    name: str,
    width: int,
    height: int,
) -> None:
    browser = Chromium(
        chromium_binary, tmp_path / "profile", width=width, height=height, mobile=width < 500
    )
    try:
        browser.send("Page.navigate", url=pages[name].as_uri())
        browser.wait_for("document.body && document.body.hasAttribute('data-charts-ready')", 60)
        metrics = browser.eval(MEASURE)
        if SCREENSHOTS:
            browser.eval(f"document.querySelector('{SHOWN[(name, width)]}').scrollIntoView()")
            browser.screenshot(Path(SCREENSHOTS) / f"{name}-{width}.png")
    finally:
        browser.close()
    assert metrics["vw"] == width
    assert metrics["charts"] >= 3
    assert metrics["overflowing"] == 0 and metrics["scroll"] <= width, metrics
    assert metrics["smallest_text_px"] >= 9.5, metrics
    legend = set(metrics["legend"])
    if name == "report":
        assert {"majority", "budget_forcing", "Pareto frontier"} <= legend
        assert "recommended (marginal gain rule)" in legend
    else:
        assert {f"{run} · majority" for run in (LAST_WEEK.run_id, TONIGHT.run_id)} <= legend
        assert f"{LAST_WEEK.run_id} · budget_forcing" in legend
