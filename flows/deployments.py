"""Serve ttscale's deployments from one local process (``ttscale serve``), no work pool needed.

The local counterparts of the three deployments ``prefect.yaml`` registers for workers, under
their own names so both can live on one Prefect server without overwriting each other:
``ttscale-batch/nightly-local`` (cron, default parameters), ``ttscale-batch/adhoc-local`` (the
BatchRequest form) and ``ttscale-shard/gpu-local`` (one shard; the target of
``BatchRequest.shard_deployment`` for batches run by ``ttscale serve``).

``ttscale serve`` runs ``python -m flows.deployments --nightly REQUEST_JSON ...`` in its place
(it does not import flows).
"""

from __future__ import annotations

from typing import Any

import prefect

from flows.batch import ttscale_batch
from flows.shard import GPU_SLOTS, ttscale_shard
from ttscale.schemas import BatchRequest

NIGHTLY_CRON = "0 2 * * *"

# `prefect deploy` (prefect.yaml) registers nightly, adhoc and gpu on the work pool; a deployment
# is keyed by flow and name, so the served ones take a suffix instead of replacing those.
NIGHTLY_LOCAL = "nightly-local"
ADHOC_LOCAL = "adhoc-local"
SHARD_LOCAL = "gpu-local"
SHARD_DEPLOYMENT_LOCAL = f"ttscale-shard/{SHARD_LOCAL}"
"""``BatchRequest.shard_deployment`` for batches whose shards run under ``ttscale serve``."""


def local_deployments(
    nightly: BatchRequest, cron: str = NIGHTLY_CRON, gpu_slots: str | None = GPU_SLOTS
) -> list[Any]:
    """The runner deployments: nightly on ``cron`` with ``nightly`` as its parameters, ad-hoc, shard."""
    return [
        ttscale_batch.to_deployment(
            name=NIGHTLY_LOCAL,
            cron=cron,
            parameters={"request": nightly.model_dump(mode="json")},
            description=f"Scheduled ttscale batch ({cron}) over {nightly.input_uri} (ttscale serve).",
            tags=["ttscale", "scheduled", "local"],
        ),
        ttscale_batch.to_deployment(
            name=ADHOC_LOCAL,
            description="Ad-hoc ttscale batch (ttscale serve): fill in the BatchRequest form.",
            tags=["ttscale", "adhoc", "local"],
        ),
        ttscale_shard.to_deployment(
            name=SHARD_LOCAL,
            parameters={"concurrency_limit": gpu_slots},
            description=f"One shard of a ttscale batch under ttscale serve ({SHARD_DEPLOYMENT_LOCAL}).",
            tags=["ttscale", "shard", "local"],
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


def main(argv: list[str] | None = None) -> None:
    """``python -m flows.deployments``: ``serve_local`` with its arguments as options."""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m flows.deployments", description=main.__doc__)
    parser.add_argument("--nightly", required=True, help="the nightly BatchRequest as JSON")
    parser.add_argument("--cron", default=NIGHTLY_CRON)
    parser.add_argument("--gpu-slots", default=GPU_SLOTS, help="'' for no concurrency limit")
    parser.add_argument("--limit", type=int, default=None)
    args = parser.parse_args(argv)
    nightly = BatchRequest.model_validate_json(args.nightly)
    serve_local(nightly, cron=args.cron, gpu_slots=args.gpu_slots or None, limit=args.limit)


if __name__ == "__main__":
    main()
