"""What a batch shows in the Prefect UI: a progress artifact while it runs, the report after."""

from __future__ import annotations

import os
import re
import threading
import time
from typing import cast
from uuid import UUID

from prefect.artifacts import (
    create_link_artifact,
    create_markdown_artifact,
    create_progress_artifact,
    create_table_artifact,
    update_progress_artifact,
)

from ttscale.reports.headline import (
    CUTOFF_HEADER,
    RESULTS_HEADER,
    cutoff_rows,
    headline_text,
    markdown_table,
    results_rows,
    slice_headlines,
)
from ttscale.reports.markdown import md_text, render_markdown
from ttscale.service import BatchPlan, PolicyChanges, PublishedReport
from ttscale.storage import browser_link

REPORT_LINK_EXPIRES_S = int(os.environ.get("TTSCALE_REPORT_LINK_EXPIRES_S", str(7 * 24 * 3600)))
"""How long the report's presigned S3 link stays valid (S3 allows at most 7 days)."""


class ProgressArtifact:
    """A Prefect progress artifact (units done of total) whose description carries the tokens.

    Updated at most every ``every_s`` seconds: the UI polls, and each update is an API call.
    """

    def __init__(self, run_id: str, total_units: int, every_s: float = 5.0) -> None:
        self.total = max(total_units, 1)
        self.every_s = every_s
        self.units = self.tokens = 0
        self._last = 0.0
        self._lock = threading.Lock()
        # Called from a sync flow, so it returns the id (its type also admits a coroutine).
        self.artifact_id = cast(
            UUID,
            create_progress_artifact(
                0.0, key=artifact_key("progress", run_id), description=self._description()
            ),
        )

    def _description(self) -> str:
        return f"{self.units:,} of {self.total:,} units · {self.tokens:,} completion tokens"

    def __call__(self, units: int, tokens: int) -> None:
        with self._lock:
            self.units += units
            self.tokens += tokens
            now = time.monotonic()
            if now - self._last < self.every_s and self.units < self.total:
                return
            self._last = now
            self.flush()

    def flush(self) -> None:
        update_progress_artifact(
            self.artifact_id, 100.0 * min(self.units, self.total) / self.total, self._description()
        )


def artifact_key(kind: str, run_id: str) -> str:
    """Artifact keys allow lowercase letters, digits and dashes only."""
    return re.sub(r"[^a-z0-9-]", "-", f"{kind}-{run_id}".lower())


def publish_artifacts(
    plan: BatchPlan, published: PublishedReport, changes: PolicyChanges | None = None
) -> None:
    """The report as a Markdown artifact (headline tables inline, then the policy's changes since
    the previous run of its kind when ``changes`` is given), and the cutoffs as a table."""
    report, uris = published.report, published.uris
    link = browser_link(uris["html"], REPORT_LINK_EXPIRES_S) if "html" in uris else None
    where = (
        f"[Open the HTML report]({link}) (link valid {REPORT_LINK_EXPIRES_S // 3600} h)"
        if link
        else f"Full report: `{uris.get('html', uris['markdown'])}` (Markdown below)"
    )
    headline = "\n\n".join([
        f"# ttscale run {plan.run_id}",
        f"{plan.items} items, {plan.bad_rows} bad rows. {where}",
        "## Headline: what to set\n\n"
        + "\n".join(f"- {md_text(headline_text(h), 600)}" for h in slice_headlines(report)),
        "## Results\n\n" + markdown_table(RESULTS_HEADER, results_rows(report)),
        "## Recommended cutoffs\n\n" + markdown_table(CUTOFF_HEADER, cutoff_rows(report)),
        *([changes.markdown()] if changes is not None else []),
    ])  # fmt: skip
    create_markdown_artifact(
        key=artifact_key("report", plan.run_id),
        markdown=headline + "\n\n---\n\n" + render_markdown(report),
        description=f"ttscale report for {plan.run_id}",
    )
    create_table_artifact(
        key=artifact_key("recommendations", plan.run_id),
        table=[
            {
                "dataset": s.dataset,
                "language": s.language,
                "rule": r.rule,
                "strategy": r.strategy,
                "budget": r.budget,
                "accuracy": round(r.accuracy, 4),
                "tokens_per_item": round(r.mean_completion_tokens, 1),
                "plateau_reached": r.plateau_reached,
                "capped_by_decline": r.capped_by_decline,
            }
            for s in report.slices
            for r in s.recommendations
        ]
        + [
            {
                "dataset": s.dataset,
                "language": s.language,
                "rule": None,
                "strategy": None,
                "budget": None,
                "withheld": s.withheld,
                "needed": s.needed,
            }
            for s in report.slices
            if s.withheld
        ],
        description=f"Recommended budget cutoffs per slice, run {plan.run_id}",
    )
    if link:
        create_link_artifact(
            key=artifact_key("report-html", plan.run_id), link=link, link_text="HTML report"
        )
