"""Publish a report's JSON, Markdown and HTML renderings, and its policy.json, to object storage."""

from __future__ import annotations

import json

from ttscale.reports.html import render_html
from ttscale.reports.markdown import render_markdown
from ttscale.reports.model import Report
from ttscale.reports.policy import build_policy
from ttscale.storage import ObjectStore, join_key

POLICY_NAME = "policy.json"


def publish_report(report: Report, store: ObjectStore, prefix: str) -> dict[str, str]:
    """Write ``report.json``, ``report.md``, ``report.html`` and ``policy.json`` under ``prefix``.

    Returns their URIs keyed by format (``json``, ``markdown``, ``html``, ``policy``). Overwrites: a report
    regenerated from the ledger replaces the previous one.
    """
    renderings = {
        "json": ("report.json", report.model_dump_json(indent=2), "application/json"),
        "markdown": ("report.md", render_markdown(report), "text/markdown; charset=utf-8"),
        "html": ("report.html", render_html(report), "text/html; charset=utf-8"),
        "policy": (
            POLICY_NAME,
            json.dumps(build_policy(report), indent=2, ensure_ascii=False),
            "application/json",
        ),
    }
    uris = {}
    for kind, (name, text, content_type) in renderings.items():
        key = join_key(prefix, name)
        store.write_bytes(key, text.encode("utf-8"), content_type=content_type)
        uris[kind] = store.uri(key)
    return uris
