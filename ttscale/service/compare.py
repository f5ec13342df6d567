"""Compare runs of one ledger: read each run's report, build the comparison, publish it.

``ttscale compare`` and the Prefect flow ``ttscale-compare`` (``flows/compare.py``) both call
``compare_runs``. The comparison goes to ``<output>/compare/<compare_id>/compare.{json,md,html}``,
where ``<output>`` is, unless given, the first run's own ``output_uri`` (where its report is),
else ``file://ttscale-out``; ``compare_id`` follows from the run ids in order.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from ttscale.errors import ConfigError
from ttscale.ledger import Ledger
from ttscale.ledger.compare_data import latest_run_ids, reports_for_runs
from ttscale.reports.compare import Comparison, build_comparison
from ttscale.reports.compare_render import publish_comparison, side_by_side_table
from ttscale.reports.headline import markdown_table
from ttscale.reports.markdown import md_text
from ttscale.storage import join_key, open_store

DEFAULT_OUTPUT = "file://ttscale-out"
COMPARE_FOLDER = "compare"


@dataclass(frozen=True)
class PublishedComparison:
    comparison: Comparison
    uris: dict[str, str]
    """``json``, ``markdown`` and ``html``: where each rendering was written."""

    def side_by_side_markdown(self) -> str:
        """The recommendations side by side as a Markdown table (the Prefect artifact)."""
        return markdown_table(*side_by_side_table(self.comparison, md_text))


def compare_runs(
    run_ids: Sequence[str], ledger_path: str, output_uri: str | None = None
) -> PublishedComparison:
    """Compare ``run_ids`` (two or more, distinct) and publish the comparison.

    Raises ``ConfigError`` (exit 2) on fewer than two runs, a repeated run or an unknown one.
    """
    if len(run_ids) < 2:
        raise ConfigError(f"compare needs at least two run ids, got {len(run_ids)}")
    repeated = sorted({r for r in run_ids if list(run_ids).count(r) > 1})
    if repeated:
        raise ConfigError(f"run {repeated[0]!r} is named more than once")
    with Ledger(ledger_path, read_only=True) as led:
        reports = reports_for_runs(led.con, run_ids)
    comparison = build_comparison(reports)
    root = output_uri or reports[0].run.request.get("output_uri") or DEFAULT_OUTPUT
    store, prefix = open_store(root)
    target = join_key(prefix, COMPARE_FOLDER, comparison.compare_id)
    return PublishedComparison(comparison, publish_comparison(comparison, store, target))


def latest_runs(ledger_path: str, count: int = 2) -> list[str]:
    """The ``count`` most recent runs of the ledger, oldest first (a scheduled comparison's
    default: last time against this time)."""
    with Ledger(ledger_path, read_only=True) as led:
        return latest_run_ids(led.con, count)
