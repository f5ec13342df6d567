"""Prefect flow ``ttscale-batch``: load + validate → shard → run shards → ingest → report.

The flow only sequences library calls (``ttscale.batch``); tasks carry the retries, and only
recoverable errors are retried.
"""

from __future__ import annotations

from typing import Any

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_link_artifact, create_markdown_artifact

from ttscale import batch
from ttscale.errors import RecoverableError
from ttscale.progress import ShardProgress
from ttscale.schemas import BatchRequest


def _recoverable(task: Any, task_run: Any, state: Any) -> bool:
    """Retry a task only when it failed with a recoverable error."""
    try:
        state.result()
    except RecoverableError:
        return True
    except Exception:
        return False
    return False


RETRIES = {"retries": 3, "retry_delay_seconds": [2, 10, 30], "retry_jitter_factor": 0.5}


@task(name="plan-batch", retry_condition_fn=_recoverable, **RETRIES)  # type: ignore[call-overload]
def plan_batch(request: BatchRequest) -> batch.BatchPlan:
    return batch.plan_batch(request)


@task(name="run-shard", retry_condition_fn=_recoverable, **RETRIES)  # type: ignore[call-overload]
def run_shard(request: BatchRequest, shard_prefix: str) -> batch.ShardSummary:
    return batch.run_shard(request, shard_prefix, progress=ShardProgress())


@task(name="ingest", retry_condition_fn=_recoverable, **RETRIES)  # type: ignore[call-overload]
def ingest(request: BatchRequest, plan: batch.BatchPlan) -> batch.IngestSummary:
    return batch.ingest(request, plan)


@task(name="report", retry_condition_fn=_recoverable, **RETRIES)  # type: ignore[call-overload]
def report(request: BatchRequest, plan: batch.BatchPlan) -> dict[str, str]:
    return batch.publish_report(request, plan)


@flow(name="ttscale-batch", log_prints=True)
def ttscale_batch(request: BatchRequest) -> dict[str, Any]:
    """Run one batch of questions through every strategy and budget, then publish its report."""
    logger = get_run_logger()
    plan = plan_batch(request)
    logger.info(
        "run %s: %d items in %d shards, %d bad rows (%s)",
        plan.run_id, plan.items, len(plan.shard_prefixes), plan.bad_rows, plan.errors_uri,
    )  # fmt: skip
    # Shards run one after another in this process: each already fills the engine's batch.
    # Issue "Run it like a service" fans them out to a GPU work pool instead.
    for shard_prefix in plan.shard_prefixes:
        summary = run_shard(request, shard_prefix)
        logger.info(
            "%s: %d units run, %d resumed", shard_prefix, summary.units_run, summary.units_skipped
        )
    ingested = ingest(request, plan)
    uris = report(request, plan)
    _publish_artifacts(plan, ingested, uris)
    return {
        "run_id": plan.run_id,
        "items": plan.items,
        "bad_rows": plan.bad_rows,
        "errors_uri": plan.errors_uri,
        "ledger": ingested.ledger_path,
        "units_added": ingested.units_added,
        "calls_added": ingested.calls_added,
        "totals": ingested.totals,
        "report": uris,
    }


def _publish_artifacts(
    plan: batch.BatchPlan, ingested: batch.IngestSummary, uris: dict[str, str]
) -> None:
    from ttscale.storage import open_object

    store, key = open_object(uris["markdown"])
    create_markdown_artifact(
        key=f"report-{plan.run_id}".lower().replace("_", "-"),
        markdown=store.read_bytes(key).decode(),
        description=f"ttscale report for {plan.run_id}",
    )
    if "html" in uris:
        create_link_artifact(
            key=f"report-html-{plan.run_id}".lower().replace("_", "-"),
            link=uris["html"],
            link_text="HTML report",
        )


if __name__ == "__main__":
    import sys
    from pathlib import Path

    ttscale_batch(BatchRequest.model_validate_json(Path(sys.argv[1]).read_text()))
