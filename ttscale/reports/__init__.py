"""Cost–accuracy reports: build from the ledger, render to Markdown/HTML/JSON, publish."""

from __future__ import annotations

from ttscale.reports.build import build_report
from ttscale.reports.html import render_html
from ttscale.reports.markdown import render_markdown
from ttscale.reports.model import Report, ReportSettings
from ttscale.reports.publish import publish_report

__all__ = [
    "Report",
    "ReportSettings",
    "build_report",
    "publish_report",
    "render_html",
    "render_markdown",
]
