"""The ``ttscale-compare`` flow: compare runs of a ledger, e.g. tonight's against last week's.

Thin over ``ttscale.service.compare``; the side-by-side recommendations become a Markdown
artifact (the full comparison is in ``compare.md`` / ``compare.html``, whose paths it lists).
"""

from __future__ import annotations

from typing import Any

from prefect import flow, get_run_logger
from prefect.artifacts import create_markdown_artifact

from flows.artifacts import artifact_key
from ttscale.reports.compare_render import render_comparison_markdown
from ttscale.schemas import LEDGER_FROM_ENV, resolve_ledger
from ttscale.service.compare import compare_runs, latest_runs


@flow(name="ttscale-compare", log_prints=True)
def ttscale_compare(
    run_ids: list[str] | None = None,
    # As BatchRequest's: the form shows it, and the run's own pod resolves it to the lake
    # its batches write ($TTSCALE_LEDGER), not the deploying process's environment.
    ledger_path: str = LEDGER_FROM_ENV,
    output_uri: str | None = None,
    latest: int = 2,
) -> dict[str, Any]:
    """Compare ``run_ids`` (default: the ``latest`` runs of the ledger, oldest first) and publish
    the comparison; returns its id, the runs and where its renderings are."""
    logger = get_run_logger()
    ledger_path = resolve_ledger(ledger_path)
    runs = list(run_ids or latest_runs(ledger_path, latest))
    published = compare_runs(runs, ledger_path, output_uri)
    comparison = published.comparison
    logger.info("comparison %s of %s: %s", comparison.compare_id, ", ".join(runs), published.uris)
    where = "\n".join(f"- {kind}: `{uri}`" for kind, uri in published.uris.items())
    create_markdown_artifact(
        key=artifact_key("compare", comparison.compare_id),
        markdown=f"# ttscale comparison {comparison.compare_id}\n\n"
        "## Recommendations side by side\n\n"
        f"{published.side_by_side_markdown()}\n\n{where}\n\n---\n\n"
        + render_comparison_markdown(comparison),
        description=f"ttscale comparison of {len(runs)} runs",
    )
    return {"compare_id": comparison.compare_id, "run_ids": runs, "uris": published.uris}
