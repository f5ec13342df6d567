"""Publish a report's JSON, Markdown and HTML renderings to object storage."""

from __future__ import annotations

from ttscale.reports.html import render_html
from ttscale.reports.markdown import render_markdown
from ttscale.reports.model import Report
from ttscale.storage import ObjectStore, join_key


def publish_report(report: Report, store: ObjectStore, prefix: str) -> dict[str, str]:
    """Write ``report.json``, ``report.md`` and ``report.html`` under ``prefix``.

    Returns their URIs keyed by format (``json``, ``markdown``, ``html``). Overwrites: a report
    regenerated from the ledger replaces the previous one.
    """
    renderings = {
        "json": ("report.json", report.model_dump_json(indent=2), "application/json"),
        "markdown": ("report.md", render_markdown(report), "text/markdown; charset=utf-8"),
        "html": ("report.html", render_html(report), "text/html; charset=utf-8"),
    }
    uris = {}
    for kind, (name, text, content_type) in renderings.items():
        key = join_key(prefix, name)
        store.write_bytes(key, text.encode("utf-8"), content_type=content_type)
        uris[kind] = store.uri(key)
    return uris
