"""Prefect flow ``ttscale-shard``: one shard of a batch, deployable to a GPU work pool.

``ttscale-batch`` starts one run of a ``ttscale-shard`` deployment per shard when its request
names it in ``shard_deployment``: ``ttscale-shard/gpu`` on the work pool (``prefect.yaml``) or
``ttscale-shard/gpu-local`` under ``ttscale serve`` (``flows/deployments.py``). A global
concurrency limit caps how many shards hold a GPU at once; create it once per Prefect server,
with as many slots as the pool has GPUs::

    prefect gcl create gpu-slots --limit 1

Without that limit the shards run uncapped (Prefect logs a warning and goes on).
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from prefect import flow, get_run_logger
from prefect.concurrency.sync import concurrency

from flows.batch import NO_RESULTS, run_shard
from ttscale.schemas import BatchRequest
from ttscale.service import ShardLayout, log_shard, resolve_run

GPU_SLOTS = "gpu-slots"
"""Name of the global concurrency limit that counts busy GPUs."""


@flow(name="ttscale-shard", log_prints=True, **NO_RESULTS)
def ttscale_shard(
    request: BatchRequest, shard_prefix: str, concurrency_limit: str | None = GPU_SLOTS
) -> dict[str, Any]:
    """Run every unfinished unit of one shard; a re-run resumes from its checkpointed parts."""
    logger = get_run_logger()
    # This process's own resolution of the run: the batch's context does not cross processes.
    ctx, shard = resolve_run(request), ShardLayout(shard_prefix)
    if not concurrency_limit:
        summary = run_shard(ctx, shard)
    else:
        # The slot is held while the engine works, so queued shards wait instead of sharing a GPU.
        with concurrency(concurrency_limit, occupy=1):
            summary = run_shard(ctx, shard)
    log_shard(logger, summary)
    return asdict(summary)


if __name__ == "__main__":
    import sys
    from pathlib import Path

    ttscale_shard(BatchRequest.model_validate_json(Path(sys.argv[1]).read_text()), sys.argv[2])
