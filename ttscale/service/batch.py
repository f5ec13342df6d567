"""A whole batch in this process: plan → every shard, one after another → ingest → report.

``ttscale run`` and the demo call ``run_batch``; the Prefect flow ``ttscale-batch`` sequences
the same steps as tasks (``flows/batch.py``). Both retry a step only on a recoverable error, with
the "step" policy of ``ttscale/retry.py``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, TypeVar

from ttscale import tempfiles
from ttscale.errors import RecoverableError
from ttscale.inputs import LoadedBatch
from ttscale.progress import Listener, ShardProgress
from ttscale.retry import retrying
from ttscale.service.context import RunContext
from ttscale.service.steps import (
    BatchPlan,
    IngestSummary,
    Logger,
    PublishedReport,
    ShardSummary,
    check_unit_failures,
    ingest,
    plan_batch,
    publish_report,
    run_shard,
)

T = TypeVar("T")

log = logging.getLogger("ttscale.service")


def retry_step(step: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Call ``step``; on a RecoverableError wait and call it again (the "step" policy of
    ``ttscale/retry.py``). The last error is raised unchanged; any other error at once."""
    return retrying("step", (RecoverableError,))(step, *args, **kwargs)


def remove_stale_temporaries(logger: Logger) -> None:
    """Remove temporary folders that killed ttscale processes left behind (see ``tempfiles``)."""
    try:
        removed = tempfiles.stale_cleanup()
    except Exception as exc:  # tidying must not fail a run
        logger.warning("could not remove stale temporary folders: %s", exc)
        return
    if removed:
        logger.info(
            "removed %d stale temporary folders: %s", len(removed), ", ".join(map(str, removed))
        )


def log_plan(logger: Logger, plan: BatchPlan) -> None:
    logger.info(
        "run %s: %d items in %d shards, %d bad rows (%s)",
        plan.run_id, plan.items, len(plan.shards), plan.bad_rows, plan.errors_uri,
    )  # fmt: skip


def log_shard(logger: Logger, summary: ShardSummary) -> None:
    logger.info(
        "%s: %d units run, %d resumed",
        summary.shard_prefix, summary.units_run, summary.units_skipped,
    )  # fmt: skip


def batch_result(
    plan: BatchPlan, ingested: IngestSummary, published: PublishedReport
) -> dict[str, Any]:
    """What a finished batch returns: counts, where the ledger and report are, headline rows."""
    from ttscale.reports.headline import cutoff_rows, results_rows

    return {
        "run_id": plan.run_id,
        "items": plan.items,
        "bad_rows": plan.bad_rows,
        "errors_uri": plan.errors_uri,
        "ledger": ingested.ledger_path,
        "units_added": ingested.units_added,
        "calls_added": ingested.calls_added,
        "totals": ingested.totals,
        "generated": ingested.generated,
        "report": published.uris,
        "results": results_rows(published.report),
        "cutoffs": cutoff_rows(published.report),
    }


def run_batch(
    ctx: RunContext, loaded: LoadedBatch | None = None, progress: Listener | None = None
) -> dict[str, Any]:
    """Run the batch of ``ctx`` here, shard after shard, then ingest it and publish its report.

    ``loaded`` is the input if the caller already read it (a preflight); ``progress`` gets
    (units, completion tokens) deltas. Returns ``batch_result``.
    """
    remove_stale_temporaries(log)
    plan = retry_step(plan_batch, ctx, loaded)
    log_plan(log, plan)
    for shard in plan.shards:
        # One ShardProgress across attempts: a retry's resumed units are not counted twice.
        shard_progress = ShardProgress(progress) if progress else None
        log_shard(log, retry_step(run_shard, ctx, shard, shard_progress))
    check_unit_failures(ctx, plan, log)
    ingested = retry_step(ingest, ctx, plan)
    published = retry_step(publish_report, ctx, plan)
    return batch_result(plan, ingested, published)
