"""Prefect flow ``ttscale-batch``: load + validate → shard → run shards → ingest → report.

The flow only sequences library calls (``ttscale.batch``); tasks carry the retries, and only
recoverable errors are retried.
"""

from __future__ import annotations

import os
import re
import threading
import time
from pathlib import Path
from typing import Any, cast
from uuid import UUID

from prefect import flow, get_run_logger, task
from prefect.artifacts import (
    create_link_artifact,
    create_markdown_artifact,
    create_progress_artifact,
    create_table_artifact,
    update_progress_artifact,
)
from prefect.client.schemas.objects import FlowRun
from prefect.deployments import run_deployment
from prefect.task_runners import ThreadPoolTaskRunner

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
    CUTOFF_HEADER,
    RESULTS_HEADER,
    cutoff_rows,
    markdown_table,
    results_rows,
)
from ttscale.reports.markdown import render_markdown
from ttscale.schemas import BatchRequest
from ttscale.storage import browser_link

REPORT_LINK_EXPIRES_S = int(os.environ.get("TTSCALE_REPORT_LINK_EXPIRES_S", str(7 * 24 * 3600)))
"""How long the report's presigned S3 link stays valid (S3 allows at most 7 days)."""


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


def _run_name() -> str:
    """Name each flow run after its ttscale run id, so the UI and the ledger agree."""
    from prefect.runtime import flow_run

    request = flow_run.parameters.get("request")
    if not isinstance(request, BatchRequest):
        request = BatchRequest.model_validate(request)
    return request.resolved_run_id()


def _tag_run(request: BatchRequest) -> None:
    """Tag this flow run with its model and strategies (filterable in the UI)."""
    from prefect.client.orchestration import get_client
    from prefect.runtime import flow_run

    from ttscale.engines import model_name

    tags = {f"model:{model_name(request.engine)}"[:100], f"engine:{request.engine.kind}"}
    tags |= {f"strategy:{kind}" for kind in sorted({u.strategy for u in expand_units(request)})}
    try:
        with get_client(sync_client=True) as client:
            client.update_flow_run(flow_run.id, tags=sorted(set(flow_run.tags) | tags))
    except Exception as exc:  # tags help people find runs; their absence must not fail one
        get_run_logger().warning("could not tag the flow run: %s", exc)


def _supersede_stale_runs(request: BatchRequest) -> None:
    """Mark Crashed the earlier flow runs of this ttscale run that Prefect still has as running.

    A run killed outright (SIGKILL, a lost machine) never reports its end, so Prefect shows it
    RUNNING (or PENDING) forever. Running the same request again resumes that ttscale run under
    the same name, in a new flow run: the old ones are stale, and this one says so.

    Prefect gives no heartbeat here to tell a dead run from a live one. If a run of the same
    request is really still going elsewhere (a concurrent duplicate, which nobody should start),
    it is marked Crashed too: the resumed run wins. Both then work from the same checkpointed
    parts, so some units may be generated twice, but the ledger ingest is idempotent per unit and
    counts none of them twice.
    """
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import (
        FlowFilter,
        FlowFilterName,
        FlowRunFilter,
        FlowRunFilterId,
        FlowRunFilterName,
        FlowRunFilterState,
        FlowRunFilterStateType,
    )
    from prefect.client.schemas.objects import StateType
    from prefect.runtime import flow_run
    from prefect.states import Crashed

    logger = get_run_logger()
    this_run = UUID(str(flow_run.id))
    try:
        with get_client(sync_client=True) as client:
            stale = client.read_flow_runs(
                flow_filter=FlowFilter(name=FlowFilterName(any_=[str(flow_run.flow_name)])),
                flow_run_filter=FlowRunFilter(
                    id=FlowRunFilterId(not_any_=[this_run]),
                    name=FlowRunFilterName(any_=[request.resolved_run_id()]),
                    state=FlowRunFilterState(
                        type=FlowRunFilterStateType(any_=[StateType.RUNNING, StateType.PENDING])
                    ),
                ),
            )
            for run in stale:
                message = f"superseded: the same ttscale run resumed in flow run {this_run}"
                client.set_flow_run_state(run.id, state=Crashed(message=message), force=True)
                logger.warning(
                    "flow run %s (%s) was left %s: marked Crashed",
                    run.id,
                    run.name,
                    run.state_type.value if run.state_type else "in no state",
                )
    except Exception as exc:  # bookkeeping of earlier runs must not fail this one
        logger.warning("could not check for stale runs of %s: %s", request.resolved_run_id(), exc)


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


class _ProgressArtifact:
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


# Each remote shard run is awaited by one thread; workers and the GPU limit cap the real work.
@flow(
    name="ttscale-batch",
    flow_run_name=_run_name,
    log_prints=True,
    task_runner=cast(Any, ThreadPoolTaskRunner(max_workers=64)),
    **NO_RESULTS,
)
def ttscale_batch(request: BatchRequest) -> dict[str, Any]:
    """Run one batch of questions through every strategy and budget, then publish its report."""
    logger = get_run_logger()
    _supersede_stale_runs(request)
    _tag_run(request)
    _remove_stale_temporaries()
    plan = plan_batch(request)
    logger.info(
        "run %s: %d items in %d shards, %d bad rows (%s)",
        plan.run_id, plan.items, len(plan.shard_prefixes), plan.bad_rows, plan.errors_uri,
    )  # fmt: skip
    units_per_item = len(expand_units(request))
    progress = _ProgressArtifact(plan.run_id, plan.items * units_per_item)
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
    _publish_artifacts(plan, published)
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


def _publish_artifacts(plan: batch.BatchPlan, published: batch.PublishedReport) -> None:
    """The report as a Markdown artifact (headline tables inline), and the cutoffs as a table."""
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
        "## Results\n\n" + markdown_table(RESULTS_HEADER, results_rows(report)),
        "## Recommended cutoffs\n\n" + markdown_table(CUTOFF_HEADER, cutoff_rows(report)),
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
        ],
        description=f"Recommended budget cutoffs per slice, run {plan.run_id}",
    )
    if link:
        create_link_artifact(
            key=artifact_key("report-html", plan.run_id), link=link, link_text="HTML report"
        )


if __name__ == "__main__":
    import sys
    from pathlib import Path

    ttscale_batch(BatchRequest.model_validate_json(Path(sys.argv[1]).read_text()))
