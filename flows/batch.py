"""Prefect flow ``ttscale-batch``: load + validate → shard → run shards → ingest → report.

The flow only sequences library calls (``ttscale.batch``); tasks carry the retries, and only
recoverable errors are retried.
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
from ttscale import batch, tempfiles
from ttscale.errors import (
    ConfigError,
    FatalError,
    RecoverableError,
    ShardRunCrashedError,
    UnitsFailedError,
)
from ttscale.progress import ShardProgress, add_listener, remove_listener
from ttscale.reports.headline import (
    cutoff_rows,
    results_rows,
)
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
def plan_batch(request: BatchRequest) -> batch.BatchPlan:
    return batch.plan_batch(request)


@task(name="run-shard", retry_condition_fn=_recoverable, **RETRIES, **NO_RESULTS)  # type: ignore[call-overload]
def run_shard(request: BatchRequest, shard_prefix: str) -> batch.ShardSummary:
    return batch.run_shard(request, shard_prefix, progress=ShardProgress())


@task(name="run-shard-deployment", retry_condition_fn=_recoverable, **RETRIES, **NO_RESULTS)  # type: ignore[call-overload]
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


@task(name="ingest", retry_condition_fn=_recoverable, **RETRIES, **NO_RESULTS)  # type: ignore[call-overload]
def ingest(request: BatchRequest, plan: batch.BatchPlan) -> batch.IngestSummary:
    from prefect.runtime import flow_run

    return batch.ingest(request, plan, flow_run_id=flow_run.id)


@task(name="report", retry_condition_fn=_recoverable, **RETRIES, **NO_RESULTS)  # type: ignore[call-overload]
def report(request: BatchRequest, plan: batch.BatchPlan) -> batch.PublishedReport:
    return batch.publish_report(request, plan)


def _remove_stale_temporaries() -> None:
    """Remove temporary folders that killed ttscale processes left behind (see ``tempfiles``)."""
    try:
        removed = tempfiles.stale_cleanup()
    except Exception as exc:  # tidying must not fail a run
        get_run_logger().warning("could not remove stale temporary folders: %s", exc)
        return
    if removed:
        get_run_logger().info(
            "removed %d stale temporary folders: %s", len(removed), ", ".join(map(str, removed))
        )


def expand_units(request: BatchRequest) -> list[Any]:
    from ttscale.runner import expand_units as expand

    return expand(request.strategies.configs())


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
    _remove_stale_temporaries()
    plan = plan_batch(request)
    logger.info(
        "run %s: %d items in %d shards, %d bad rows (%s)",
        plan.run_id, plan.items, len(plan.shard_prefixes), plan.bad_rows, plan.errors_uri,
    )  # fmt: skip
    units_per_item = len(expand_units(request))
    progress = ProgressArtifact(plan.run_id, plan.items * units_per_item)
    if request.shard_deployment:
        futures = [run_shard_deployment.submit(request, p) for p in plan.shard_prefixes]
        shards = zip(plan.shard_prefixes, plan.shard_items, futures, strict=True)
        for shard_prefix, items, future in shards:
            logger.info("%s: done in flow run %s", shard_prefix, future.result())
            progress(items * units_per_item, 0)
    else:
        # One after another in this process: each shard already fills the engine's batch.
        add_listener(progress)
        try:
            for shard_prefix in plan.shard_prefixes:
                summary = run_shard(request, shard_prefix)
                logger.info(
                    "%s: %d units run, %d resumed",
                    shard_prefix, summary.units_run, summary.units_skipped,
                )  # fmt: skip
        finally:
            remove_listener(progress)
    progress.flush()
    _check_unit_failures(request, plan, plan.items * units_per_item)
    ingested = ingest(request, plan)
    published = report(request, plan)
    publish_artifacts(plan, published)
    return {
        "run_id": plan.run_id,
        "items": plan.items,
        "bad_rows": plan.bad_rows,
        "errors_uri": plan.errors_uri,
        "ledger": ingested.ledger_path,
        "units_added": ingested.units_added,
        "calls_added": ingested.calls_added,
        "totals": ingested.totals,
        "report": published.uris,
        "results": results_rows(published.report),
        "cutoffs": cutoff_rows(published.report),
    }


def _check_unit_failures(request: BatchRequest, plan: batch.BatchPlan, total_units: int) -> None:
    """Fail the run when more units errored than ``fail_on_error`` allows (nothing is ingested).

    Below the threshold the run goes on; its errored units are reported apart from the answers,
    and their shards stay unfinished, so running the same batch again retries them.
    """
    errored, retryable = batch.errored_units(request, plan)
    if errored and errored > request.fail_on_error * total_units:
        retry = (
            f"their attempts are kept under {plan.output_prefix}/shards: run the same batch "
            "again to retry them"
            if retryable
            else "the engine refused them (a retry would not help): see the parts' errors"
        )
        raise UnitsFailedError(
            f"{errored} of {total_units} units failed ({errored / max(total_units, 1):.0%}, "
            f"fail_on_error allows {request.fail_on_error:.0%}); {retry}"
        )
    if errored:
        get_run_logger().warning(
            "%d of %d units failed (%d retryable); reported apart", errored, total_units, retryable
        )


if __name__ == "__main__":
    import sys
    from pathlib import Path

    ttscale_batch(BatchRequest.model_validate_json(Path(sys.argv[1]).read_text()))
