from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
from synthetic_ledger import synthetic_ledger

from ttscale.analysis.synthetic import PlantedCurve, SyntheticLedgerSpec
from ttscale.ledger.report_data import build_report_from_ledger
from ttscale.reports import render_html, render_markdown

CHROMIUM = Path("/usr/bin/chromium")
HOSTILE = '<script>alert(1)</script> & "quotes" {index}'


@pytest.fixture(scope="module")
def hostile_html(tmp_path_factory) -> str:
    # A planted decline makes the report show example questions, which carry the payload.
    spec = SyntheticLedgerSpec(
        curves=(
            PlantedCurve(
                "majority", (1, 2, 4, 8), f_max=0.9, p=0.7, decline_after=2, decline_rate=0.5
            ),
        ),
        items_per_slice=150,
        question_template=HOSTILE,
        run_id="<b>run</b>",
    )
    con = synthetic_ledger(spec, tmp_path_factory.mktemp("ledger") / "l.duckdb")
    report = build_report_from_ledger(con, spec.run_id)
    assert any(f.examples for s in report.slices for f in s.inverse_scaling)
    return render_html(report)


def test_question_text_is_escaped(hostile_html: str) -> None:
    assert "<script>alert(1)" not in hostile_html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in hostile_html
    assert "<b>run</b>" not in hostile_html
    # The only script element is the report's own.
    assert len(re.findall(r"<script>", hostile_html)) == 1


def test_markdown_escapes_too(tmp_path) -> None:
    spec = SyntheticLedgerSpec(
        curves=(PlantedCurve("majority", (1, 2), f_max=0.5, p=0.5),),
        items_per_slice=20,
        run_id="<script>alert(1)</script>",
    )
    con = synthetic_ledger(spec, tmp_path / "l.duckdb")
    assert "<script>" not in render_markdown(build_report_from_ledger(con, spec.run_id))


def test_report_is_self_contained(hostile_html: str) -> None:
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", hostile_html)
    assert "<svg" in hostile_html


@pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian chromium is not installed")
def test_report_loads_in_headless_chromium(hostile_html: str, tmp_path: Path) -> None:
    page = tmp_path / "report.html"
    page.write_text(hostile_html, encoding="utf-8")
    result = subprocess.run(
        [
            str(CHROMIUM),
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            f"--user-data-dir={tmp_path / 'profile'}",
            "--enable-logging=stderr",
            "--v=0",
            "--dump-dom",
            page.as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    console = [line for line in result.stderr.splitlines() if ":CONSOLE" in line]
    assert console == []
    # The inline script ran (it counts the charts) and the charts are in the live DOM.
    ready = re.search(r'data-charts-ready="(\d+)"', result.stdout)
    assert ready is not None and int(ready.group(1)) >= 2
    assert result.stdout.count("<circle") >= 4
    assert "<script>alert(1)" not in result.stdout
