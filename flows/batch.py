"""Prefect flow ``ttscale-batch``: load + validate → shard → run shards → ingest → report.

The flow only sequences library calls (``ttscale.batch``); tasks carry the retries, and only
recoverable errors are retried.
"""

from __future__ import annotations

from typing import Any, cast

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_link_artifact, create_markdown_artifact, create_table_artifact
from prefect.client.schemas.objects import FlowRun
from prefect.deployments import run_deployment
from prefect.task_runners import ThreadPoolTaskRunner

from ttscale import batch
from ttscale.errors import ConfigError, FatalError, RecoverableError, ShardRunCrashedError
from ttscale.progress import ShardProgress
from ttscale.reports.model import Report
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


@task(name="run-shard-deployment", retry_condition_fn=_recoverable, **RETRIES)  # type: ignore[call-overload]
def run_shard_deployment(request: BatchRequest, shard_prefix: str) -> str:
    """Run one shard as a flow run of ``request.shard_deployment``; wait for it to finish.

    A crashed or cancelled shard run (a lost worker) is recoverable: the retry starts a new run,
    which resumes from the shard's parts. A failed one is not: it already retried what it could.
    """
    if not request.shard_deployment:
        raise ConfigError("run_shard_deployment needs request.shard_deployment")
    flow_run: FlowRun = run_deployment(  # type: ignore[assignment]
        request.shard_deployment,
        parameters={"request": request.model_dump(mode="json"), "shard_prefix": shard_prefix},
        flow_run_name=f"{request.resolved_run_id()}-{shard_prefix.rsplit('/', 1)[-1]}",
        timeout=None,
        poll_interval=2,
    )
    state = flow_run.state
    if state is not None and state.is_completed():
        return str(flow_run.id)
    what = f"shard run {flow_run.name} ({flow_run.id}) of {shard_prefix} ended "
    what += f"{state.type.value if state else 'without a state'}: {state.message if state else ''}"
    if state is None or state.is_crashed() or state.is_cancelled():
        raise ShardRunCrashedError(what)
    raise FatalError(what)


@task(name="ingest", retry_condition_fn=_recoverable, **RETRIES)  # type: ignore[call-overload]
def ingest(request: BatchRequest, plan: batch.BatchPlan) -> batch.IngestSummary:
    return batch.ingest(request, plan)


@task(name="report", retry_condition_fn=_recoverable, **RETRIES)  # type: ignore[call-overload]
def report(request: BatchRequest, plan: batch.BatchPlan) -> dict[str, str]:
    return batch.publish_report(request, plan)


# Each remote shard run is awaited by one thread; workers and the GPU limit cap the real work.
@flow(
    name="ttscale-batch",
    log_prints=True,
    task_runner=cast(Any, ThreadPoolTaskRunner(max_workers=64)),
)
def ttscale_batch(request: BatchRequest) -> dict[str, Any]:
    """Run one batch of questions through every strategy and budget, then publish its report."""
    logger = get_run_logger()
    plan = plan_batch(request)
    logger.info(
        "run %s: %d items in %d shards, %d bad rows (%s)",
        plan.run_id, plan.items, len(plan.shard_prefixes), plan.bad_rows, plan.errors_uri,
    )  # fmt: skip
    if request.shard_deployment:
        futures = [run_shard_deployment.submit(request, p) for p in plan.shard_prefixes]
        for shard_prefix, future in zip(plan.shard_prefixes, futures, strict=True):
            logger.info("%s: done in flow run %s", shard_prefix, future.result())
    else:
        # One after another in this process: each shard already fills the engine's batch.
        for shard_prefix in plan.shard_prefixes:
            summary = run_shard(request, shard_prefix)
            logger.info(
                "%s: %d units run, %d resumed",
                shard_prefix, summary.units_run, summary.units_skipped,
            )  # fmt: skip
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
    json_store, json_key = open_object(uris["json"])
    report = Report.model_validate_json(json_store.read_bytes(json_key))
    create_table_artifact(
        key=f"recommendations-{plan.run_id}".lower().replace("_", "-"),
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
        ],
        description=f"Recommended budget cutoffs per slice, run {plan.run_id}",
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
