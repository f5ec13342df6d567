"""One run of a batch: resolve it once, plan it, run its shards, ingest them, publish the report.

Above the runner (one unit), the strategies and engines, the ledger and storage; below the
``ttscale`` command and the Prefect flows, which call these functions and nothing under them
for a run's sequence.
"""

from __future__ import annotations

from ttscale.service.batch import (
    batch_result,
    log_plan,
    log_shard,
    remove_stale_temporaries,
    retry_step,
    run_batch,
)
from ttscale.service.context import RunContext, resolve_run
from ttscale.service.layout import RunLayout, ShardLayout
from ttscale.service.parts import PartWriter, part_objects, read_parts, settled_units
from ttscale.service.policy_changes import PolicyChanges, policy_changes
from ttscale.service.steps import (
    BatchPlan,
    IngestSummary,
    PublishedReport,
    ShardSummary,
    UnitFailures,
    check_unit_failures,
    ingest,
    plan_batch,
    publish_report,
    run_shard,
    shard_questions,
    unit_failures,
)

__all__ = [
    "BatchPlan",
    "IngestSummary",
    "PartWriter",
    "PolicyChanges",
    "PublishedReport",
    "RunContext",
    "RunLayout",
    "ShardLayout",
    "ShardSummary",
    "UnitFailures",
    "batch_result",
    "check_unit_failures",
    "ingest",
    "log_plan",
    "log_shard",
    "part_objects",
    "plan_batch",
    "policy_changes",
    "publish_report",
    "read_parts",
    "remove_stale_temporaries",
    "resolve_run",
    "retry_step",
    "run_batch",
    "run_shard",
    "settled_units",
    "shard_questions",
    "unit_failures",
]
