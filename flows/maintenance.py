"""The ``ttscale-ledger-compact`` flow: the ledger's upkeep on a schedule (prefect.yaml: weekly).

Thin over ``ttscale.ledger.maintenance.compact_ledger``, what ``ttscale ledger compact`` runs;
the files before and after become a Markdown artifact.
"""

from __future__ import annotations

from typing import Any

from prefect import flow, get_run_logger
from prefect.artifacts import create_markdown_artifact

from ttscale.ledger.lake import parse_ledger
from ttscale.ledger.maintenance import compact_ledger, parse_keep
from ttscale.schemas import LEDGER_FROM_ENV, resolve_ledger


@flow(name="ttscale-ledger-compact", log_prints=True)
def ttscale_ledger_compact(
    # As BatchRequest's: resolved in the flow run's own pod ($TTSCALE_LEDGER, the service's lake).
    ledger_path: str = LEDGER_FROM_ENV,
    keep: str = "7d",
) -> dict[str, Any]:
    """Merge the ledger's small files and delete what no reader needs any more (files replaced,
    and snapshots taken, more than ``keep`` ago: 7d, 12h, 30m or 0). Returns the files before
    and after, the snapshots expired and the files deleted."""
    ledger = resolve_ledger(ledger_path)
    result = compact_ledger(ledger, parse_keep(keep))
    where = parse_ledger(ledger).display
    before, after = result.before, result.after
    get_run_logger().info(
        "compacted %s: %d → %d data files; %d snapshots expired, %d files deleted, %d kept",
        where, before.data_files, after.data_files, result.snapshots_expired,
        result.files_deleted, result.files_kept,
    )  # fmt: skip
    create_markdown_artifact(
        key="ledger-compact",
        markdown=f"# ttscale ledger compaction\n\n`{where}`, keep {keep}\n\n"
        "| | data files | MiB | delete files |\n|---|---|---|---|\n"
        f"| before | {before.data_files:,} | {before.data_bytes / 2**20:,.1f} | {before.delete_files:,} |\n"
        f"| after | {after.data_files:,} | {after.data_bytes / 2**20:,.1f} | {after.delete_files:,} |\n\n"
        f"{result.snapshots_expired:,} snapshots expired; {result.files_deleted:,} files deleted; "
        f"{result.files_kept:,} replaced files kept for readers until older than {keep}.",
        description="ttscale ledger compaction",
    )
    return result.to_json() | {"ledger": where}
