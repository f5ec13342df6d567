"""Prefect flow ``ttscale-batch``: load + validate → shard → run shards → ingest → report.

The flow only sequences service calls (``ttscale.service``) on the run resolved once at its start;
tasks carry the retries, and only recoverable errors are retried. Its Prefect-only parts are the
run's identity (``run_state``), the UI artifacts (``artifacts``) and remote shard runs.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, cast

from prefect import flow, get_run_logger, task
from prefect.client.schemas.objects import FlowRun
from prefect.deployments import run_deployment
from prefect.task_runners import ThreadPoolTaskRunner

from flows.artifacts import ProgressArtifact, publish_artifacts
from flows.run_state import run_name, supersede_stale_runs, tag_run
from ttscale import service
from ttscale.errors import ConfigError, FatalError, RecoverableError, ShardRunCrashedError
from ttscale.progress import ShardProgress, add_listener, remove_listener
from ttscale.retry import POLICIES
from ttscale.schemas import BatchRequest
from ttscale.service import BatchPlan, PolicyChanges, RunContext, ShardLayout


def _recoverable(task: Any, task_run: Any, state: Any) -> bool:
    """Retry a task only when it failed with a recoverable error."""
    try:
        state.result()
    except RecoverableError:
        return True
    except Exception:
        return False
    return False


RETRIES = {
    "retries": len(POLICIES["step"].delays_s),
    "retry_delay_seconds": list(POLICIES["step"].delays_s),
    "retry_jitter_factor": POLICIES["step"].jitter,
}
"""The "step" retry policy (``ttscale/retry.py``, as ``ttscale.service.retry_step`` uses it) as
Prefect task options."""


def prefect_result_storage() -> Path | None:
    """Where Prefect may write results of ttscale's flows and tasks: ``$PREFECT_HOME/storage``.

    ttscale needs no Prefect results (shards checkpoint their own parts, the ledger and report
    hold the rest), so its flows and tasks set ``persist_result=False``. Prefect 3.7 still
    pickles the exception of every failed task and flow run to result storage, whatever
    ``persist_result`` says, and its default local path ignores PREFECT_HOME: it is
    ``~/.prefect/storage`` even when PREFECT_HOME points elsewhere (prefect#23046). So unless a
    result storage is configured (``PREFECT_RESULTS_DEFAULT_STORAGE_BLOCK``, or the local path set
    explicitly, as ``PREFECT_RESULTS_LOCAL_STORAGE_PATH``), give it ``$PREFECT_HOME/storage``.

    Read when this module is imported: PREFECT_HOME changed later in the same process (a test
    harness does that) is not followed. A server-side default storage block is shadowed.
    """
    from prefect.settings import get_current_settings

    settings = get_current_settings()
    configured = "local_storage_path" in settings.results.model_fields_set
    if settings.results.default_storage_block or configured:
        return None
    return Path(settings.home) / "storage"


NO_RESULTS: dict[str, Any] = {"persist_result": False, "result_storage": prefect_result_storage()}
"""Decorator arguments of every ttscale task and flow: no results kept, failures under
PREFECT_HOME (``prefect_result_storage``)."""


@task(name="plan-batch", retry_condition_fn=_recoverable, **RETRIES, **NO_RESULTS)  # type: ignore[call-overload]
def plan_batch(ctx: RunContext) -> BatchPlan:
    return service.plan_batch(ctx)


@task(name="run-shard", retry_condition_fn=_recoverable, **RETRIES, **NO_RESULTS)  # type: ignore[call-overload]
def run_shard(ctx: RunContext, shard: ShardLayout) -> service.ShardSummary:
    return service.run_shard(ctx, shard, progress=ShardProgress())


@task(name="run-shard-deployment", retry_condition_fn=_recoverable, **RETRIES, **NO_RESULTS)  # type: ignore[call-overload]
def run_shard_deployment(ctx: RunContext, shard: ShardLayout) -> str:
    """Run one shard as a flow run of ``request.shard_deployment``; wait for it to finish.

    A crashed or cancelled shard run (a lost worker) is recoverable: the retry starts a new run,
    which resumes from the shard's parts. A failed one is not: it already retried what it could.
    """
    request = ctx.request
    if not request.shard_deployment:
        raise ConfigError("run_shard_deployment needs request.shard_deployment")
    flow_run: FlowRun = run_deployment(  # type: ignore[assignment]
        request.shard_deployment,
        parameters={"request": request.model_dump(mode="json"), "shard_prefix": shard.prefix},
        flow_run_name=f"{ctx.run_id}-{shard.name}",
        timeout=None,
        poll_interval=2,
    )
    state = flow_run.state
    if state is not None and state.is_completed():
        return str(flow_run.id)
    what = f"shard run {flow_run.name} ({flow_run.id}) of {shard.prefix} ended "
    what += f"{state.type.value if state else 'without a state'}: {state.message if state else ''}"
    if state is None or state.is_crashed() or state.is_cancelled():
        raise ShardRunCrashedError(what)
    raise FatalError(what)


@task(name="ingest", retry_condition_fn=_recoverable, **RETRIES, **NO_RESULTS)  # type: ignore[call-overload]
def ingest(ctx: RunContext, plan: BatchPlan) -> service.IngestSummary:
    from prefect.runtime import flow_run

    return service.ingest(ctx, plan, flow_run_id=flow_run.id)


@task(name="report", retry_condition_fn=_recoverable, **RETRIES, **NO_RESULTS)  # type: ignore[call-overload]
def report(ctx: RunContext, plan: BatchPlan) -> service.PublishedReport:
    return service.publish_report(ctx, plan)


@task(name="policy-changes", retry_condition_fn=_recoverable, **RETRIES, **NO_RESULTS)  # type: ignore[call-overload]
def policy_changes(ctx: RunContext, published: service.PublishedReport) -> PolicyChanges:
    return service.policy_changes(ctx.ledger_path, ctx.run_id, published.report)


# Each remote shard run is awaited by one thread; workers and the GPU limit cap the real work.
@flow(
    name="ttscale-batch",
    flow_run_name=run_name,
    log_prints=True,
    task_runner=cast(Any, ThreadPoolTaskRunner(max_workers=64)),
    **NO_RESULTS,
)
def ttscale_batch(request: BatchRequest) -> dict[str, Any]:
    """Run one batch of questions through every strategy and budget, then publish its report."""
    logger = get_run_logger()
    supersede_stale_runs(request)
    tag_run(request)
    service.remove_stale_temporaries(logger)
    ctx = service.resolve_run(request)
    plan = plan_batch(ctx)
    service.log_plan(logger, plan)
    progress = ProgressArtifact(plan.run_id, plan.total_units)
    if request.shard_deployment:
        futures = [run_shard_deployment.submit(ctx, shard) for shard in plan.shards]
        for shard, items, future in zip(plan.shards, plan.shard_items, futures, strict=True):
            logger.info("%s: done in flow run %s", shard.prefix, future.result())
            progress(items * plan.units_per_item, 0)
    else:
        # One after another in this process: each shard already fills the engine's batch.
        add_listener(progress)
        try:
            for shard in plan.shards:
                service.log_shard(logger, run_shard(ctx, shard))
        finally:
            remove_listener(progress)
    progress.flush()
    service.check_unit_failures(ctx, plan, logger)
    ingested = ingest(ctx, plan)
    published = report(ctx, plan)
    try:
        changes: PolicyChanges | None = policy_changes(ctx, published)
    except Exception as exc:  # the run is complete and published: the diff must not fail it
        logger.warning("policy changes since the previous run not computed: %s", exc)
        changes = None
    publish_artifacts(plan, published, changes)
    return service.batch_result(plan, ingested, published)


if __name__ == "__main__":
    import sys
    from pathlib import Path

    ttscale_batch(BatchRequest.model_validate_json(Path(sys.argv[1]).read_text()))
