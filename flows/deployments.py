"""Serve ttscale's deployments from one local process (``ttscale serve``), no work pool needed.

The same three deployments that ``prefect.yaml`` registers for workers: ``ttscale-batch/nightly``
(cron, default parameters), ``ttscale-batch/adhoc`` (the BatchRequest form) and
``ttscale-shard/gpu`` (one shard; the target of ``BatchRequest.shard_deployment``).
"""

from __future__ import annotations

from typing import Any

import prefect

from flows.batch import ttscale_batch
from flows.shard import GPU_SLOTS, ttscale_shard
from ttscale.schemas import BatchRequest

NIGHTLY_CRON = "0 2 * * *"


def local_deployments(
    nightly: BatchRequest, cron: str = NIGHTLY_CRON, gpu_slots: str | None = GPU_SLOTS
) -> list[Any]:
    """The runner deployments: nightly on ``cron`` with ``nightly`` as its parameters, ad-hoc, shard."""
    return [
        ttscale_batch.to_deployment(
            name="nightly",
            cron=cron,
            parameters={"request": nightly.model_dump(mode="json")},
            description=f"Scheduled ttscale batch ({cron}) over {nightly.input_uri}.",
            tags=["ttscale", "scheduled"],
        ),
        ttscale_batch.to_deployment(
            name="adhoc",
            description="Ad-hoc ttscale batch: fill in the BatchRequest form.",
            tags=["ttscale", "adhoc"],
        ),
        ttscale_shard.to_deployment(
            name="gpu",
            parameters={"concurrency_limit": gpu_slots},
            description="One shard of a ttscale batch; started by ttscale-batch.",
            tags=["ttscale", "shard"],
        ),
    ]


def serve_local(
    nightly: BatchRequest,
    cron: str = NIGHTLY_CRON,
    gpu_slots: str | None = GPU_SLOTS,
    limit: int | None = None,
) -> None:
    """Register the deployments with the Prefect API and run their flow runs until interrupted."""
    prefect.serve(*local_deployments(nightly, cron, gpu_slots), limit=limit)
