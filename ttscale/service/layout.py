"""Where every object of a run lives. The one place that composes a run's keys.

Under ``{output prefix}/runs/{run_id}/``::

    request.json                the BatchRequest
    errors.jsonl                every bad input row (object, line, field, reason)
    run.log                     library logs of a local ``ttscale run`` (local outputs only)
    shards/00000/input.jsonl    the shard's questions (create-only)
    shards/00000/part-*.jsonl   finished unit records, checkpointed as they finish
    shards/00000/done.json      written last: engine name, versions, prompt profile
    report/report.{json,md,html}
    report/policy.json          the recommendations as a serving policy (ttscale.policy/v1)

Runs written by earlier versions have the same layout, so they resume.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass

from ttscale.reports.publish import POLICY_NAME
from ttscale.storage import join_key


@dataclass(frozen=True)
class ShardLayout:
    """The keys of one shard, under ``prefix`` (``…/runs/<run_id>/shards/00000``)."""

    prefix: str

    @property
    def input(self) -> str:
        return join_key(self.prefix, "input.jsonl")

    @property
    def done(self) -> str:
        return join_key(self.prefix, "done.json")

    @property
    def parts(self) -> str:
        """The prefix every part object's key starts with."""
        return join_key(self.prefix, "part-")

    def new_part(self) -> str:
        """A fresh part key: time-ordered, unique even when a zombie worker writes too."""
        return join_key(self.prefix, f"part-{time.time_ns():020d}-{uuid.uuid4().hex[:8]}.jsonl")

    @property
    def name(self) -> str:
        """``00000``: the shard's folder name."""
        return self.prefix.rsplit("/", 1)[-1]


@dataclass(frozen=True)
class RunLayout:
    """The keys of one run, under ``prefix`` (``<output prefix>/runs/<run_id>``)."""

    prefix: str

    @classmethod
    def of(cls, output_prefix: str, run_id: str) -> RunLayout:
        """The layout of run ``run_id`` in an output store whose base prefix is ``output_prefix``."""
        return cls(join_key(output_prefix, "runs", run_id))

    @property
    def request(self) -> str:
        return join_key(self.prefix, "request.json")

    @property
    def errors(self) -> str:
        return join_key(self.prefix, "errors.jsonl")

    @property
    def run_log(self) -> str:
        return join_key(self.prefix, "run.log")

    @property
    def report(self) -> str:
        """The prefix the report's renderings go under (``report.json``, ``.md``, ``.html``)."""
        return join_key(self.prefix, "report")

    @property
    def policy(self) -> str:
        """The run's ``policy.json``, next to ``report.json``."""
        return join_key(self.report, POLICY_NAME)

    @property
    def shards(self) -> str:
        return join_key(self.prefix, "shards")

    def shard(self, index: int) -> ShardLayout:
        return ShardLayout(join_key(self.shards, f"{index:05d}"))
