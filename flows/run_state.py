"""A batch flow run's identity in Prefect: named after its run id, tagged, and the only live
run of that id."""

from __future__ import annotations

from uuid import UUID

from prefect import get_run_logger

from ttscale.schemas import BatchRequest


def run_name() -> str:
    """Name each flow run after its ttscale run id, so the UI and the ledger agree."""
    from prefect.runtime import flow_run

    request = flow_run.parameters.get("request")
    if not isinstance(request, BatchRequest):
        request = BatchRequest.model_validate(request)
    return request.resolved_run_id()


def tag_run(request: BatchRequest) -> None:
    """Tag this flow run with its model and strategies (filterable in the UI)."""
    from prefect.client.orchestration import get_client
    from prefect.runtime import flow_run

    from ttscale.engines import model_name

    tags = {f"model:{model_name(request.engine)}"[:100], f"engine:{request.engine.kind}"}
    tags |= {f"strategy:{config.kind}" for config in request.strategies.configs()}
    try:
        with get_client(sync_client=True) as client:
            client.update_flow_run(flow_run.id, tags=sorted(set(flow_run.tags) | tags))
    except Exception as exc:  # tags help people find runs; their absence must not fail one
        get_run_logger().warning("could not tag the flow run: %s", exc)


def supersede_stale_runs(request: BatchRequest) -> None:
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
