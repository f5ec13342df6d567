"""Cost–accuracy reports: build from a run's ``ReportData``, render to Markdown/HTML/JSON, publish.

The data is read by ``ttscale.ledger.readers.read_report_data``; this package runs no SQL.
"""

from __future__ import annotations

from ttscale.reports.build import build_report
from ttscale.reports.data import ReportData
from ttscale.reports.html import render_html
from ttscale.reports.markdown import render_markdown
from ttscale.reports.model import Report, ReportSettings
from ttscale.reports.publish import publish_report

__all__ = [
    "Report",
    "ReportData",
    "ReportSettings",
    "build_report",
    "publish_report",
    "render_html",
    "render_markdown",
]
