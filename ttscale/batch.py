"""Batch steps as plain library calls; Prefect flows only sequence them.

Object layout under ``{output}/runs/{run_id}/``::

    request.json          the BatchRequest
    errors.jsonl          every bad input row (object, line, field, reason)
    shards/00000/input.jsonl   the shard's questions (create-only)
    shards/00000/part-*.jsonl  finished unit records, checkpointed as they finish
    shards/00000/done.json     written last: engine name, versions, prompt profile
    report/report.{json,md,html}
"""

from __future__ import annotations

import contextlib
import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from ttscale.engines import model_name
from ttscale.engines.base import Engine
from ttscale.engines.host import engine_host
from ttscale.errors import InputError, ObjectExistsError
from ttscale.inputs import load_batch
from ttscale.ledger import Ledger
from ttscale.ledger.lake import retry_lake
from ttscale.ledger.staging import RunRow
from ttscale.prompts import resolve_profile
from ttscale.runner import (
    PartWriter,
    ProgressFn,
    expand_units,
    is_settled,
    read_parts,
    run_shard_units,
    unit_key,
)
from ttscale.schemas import BadRow, BatchRequest, Question
from ttscale.storage import ObjectStore, join_key, open_store

if TYPE_CHECKING:
    from ttscale.reports.model import Report


@dataclass
class BatchPlan:
    """What ``plan_batch`` laid out: the run and its shards."""

    run_id: str
    items: int
    bad_rows: int
    shard_prefixes: list[str]
    errors_uri: str
    output_prefix: str
    shard_items: list[int] = field(default_factory=list)
    """Items in each shard, in the order of ``shard_prefixes``."""
    started_at: datetime | None = None


@dataclass
class ShardSummary:
    shard_prefix: str
    units_run: int
    units_skipped: int
    skipped_whole: bool = False
    units_errored: int = 0
    """Units of this attempt that failed in a way a retry may fix; the shard stays unfinished."""


@dataclass
class IngestSummary:
    units_added: int
    calls_added: int
    ledger_path: str
    totals: dict[str, Any] = field(default_factory=dict)


def run_prefix(store_prefix: str, run_id: str) -> str:
    """Where a run's objects live under an output store's prefix: ``runs/<run_id>``."""
    return join_key(store_prefix, "runs", run_id)


def _jsonl(rows: list[dict[str, Any]]) -> bytes:
    return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows).encode()


def _write_once(store: ObjectStore, key: str, data: bytes, content_type: str) -> None:
    """Create ``key``; if it exists it must hold the same bytes (a resumed run)."""
    try:
        store.write_bytes(key, data, content_type=content_type, create_only=True)
    except ObjectExistsError:
        if store.read_bytes(key) != data:
            raise InputError(
                f"{store.uri(key)} exists with other content: the input changed since this run "
                "started; give a new run_id"
            ) from None


def _shard_questions(store: ObjectStore, shard_prefix: str) -> list[Question]:
    lines = store.read_bytes(join_key(shard_prefix, "input.jsonl")).decode().splitlines()
    return [Question.model_validate_json(line) for line in lines if line.strip()]


def plan_batch(request: BatchRequest) -> BatchPlan:
    """Load and validate the input, write the errors object and one input object per shard."""
    batch = load_batch(request.input_uri)
    questions = batch.questions[: request.max_items] if request.max_items else batch.questions
    store, base = open_store(request.output_uri)
    prefix = run_prefix(base, request.resolved_run_id())
    store.write_bytes(
        join_key(prefix, "request.json"),
        request.model_dump_json(indent=2).encode(),
        content_type="application/json",
    )
    errors_key = join_key(prefix, "errors.jsonl")
    store.write_bytes(
        errors_key,
        _jsonl([b.model_dump() for b in batch.bad_rows]),
        content_type="application/x-ndjson",
    )
    shard_prefixes, shard_items = [], []
    for index, start in enumerate(range(0, len(questions), request.shard_size)):
        shard_prefix = join_key(prefix, "shards", f"{index:05d}")
        rows = [q.model_dump() for q in questions[start : start + request.shard_size]]
        _write_once(
            store, join_key(shard_prefix, "input.jsonl"), _jsonl(rows), "application/x-ndjson"
        )
        shard_prefixes.append(shard_prefix)
        shard_items.append(len(rows))
    return BatchPlan(
        run_id=request.resolved_run_id(),
        items=len(questions),
        bad_rows=len(batch.bad_rows),
        shard_prefixes=shard_prefixes,
        errors_uri=store.uri(errors_key),
        output_prefix=prefix,
        shard_items=shard_items,
        started_at=datetime.now(UTC),
    )


def run_shard(
    request: BatchRequest, shard_prefix: str, progress: ProgressFn | None = None
) -> ShardSummary:
    """Run every unfinished unit of one shard on this process's engine.

    Re-running is safe: a finished shard is skipped whole, a partly finished one resumes.
    """
    store, _ = open_store(request.output_uri)
    done_key = join_key(shard_prefix, "done.json")
    units = expand_units(request.strategies.configs())
    if store.exists(done_key):
        if progress:
            progress(len(_shard_questions(store, shard_prefix)) * len(units), 0)
        return ShardSummary(shard_prefix, 0, 0, skipped_whole=True)
    questions = _shard_questions(store, shard_prefix)
    # Errored units that a retry may fix are not finished: this attempt runs them again.
    finished = {
        unit_key(r)
        for _, records in read_parts(store, shard_prefix)
        for r in records
        if is_settled(r)
    }
    if progress:
        # Resumed units count as done, so a resumed run's progress starts where it stopped.
        resumed, report_progress = len(finished), progress
        report_progress(resumed, 0)

        def progress(units: int, tokens: int) -> None:
            report_progress(resumed + units, tokens)

    profile = resolve_profile(request.engine.profile, model_name(request.engine))
    writer = PartWriter(store, shard_prefix)

    async def work(engine: Engine) -> tuple[int, dict[str, Any]]:
        ran = await run_shard_units(
            engine,
            profile,
            questions,
            units,
            run_id=request.resolved_run_id(),
            run_seed=request.seed,
            skip=finished,
            writer=writer,
            progress=progress,
        )
        return ran, {"engine": engine.name, "versions": engine.versions()}

    ran, engine_info = engine_host().run(request.engine, work)
    if writer.unsettled:
        # No done.json: the next attempt (a re-run of the batch) retries the errored units.
        return ShardSummary(shard_prefix, ran, len(finished), units_errored=writer.unsettled)
    manifest = engine_info | {
        "engine_kind": request.engine.kind,
        "profile": profile.as_dict(),
        "parts": store.list(join_key(shard_prefix, "part-")),
    }
    # Another attempt of this shard may have finished first; its parts are equally valid.
    with contextlib.suppress(ObjectExistsError):
        store.write_bytes(
            done_key,
            json.dumps(manifest).encode(),
            content_type="application/json",
            create_only=True,
        )
    return ShardSummary(shard_prefix, ran, len(finished))


def errored_units(request: BatchRequest, plan: BatchPlan) -> tuple[int, int]:
    """(errored, retryable): units whose every attempt so far errored, and how many of those a
    retry may fix (their shards stay unfinished, so a re-run runs them again)."""
    store, _ = open_store(request.output_uri)
    errored = retryable = 0
    for shard_prefix in plan.shard_prefixes:
        attempts: dict[tuple[str, str, int], list[dict[str, Any]]] = {}
        for _, records in read_parts(store, shard_prefix):
            for record in records:
                attempts.setdefault(unit_key(record), []).append(record)
        for records in attempts.values():
            if all(r.get("error") is not None for r in records):
                errored += 1
                retryable += not any(is_settled(r) for r in records)
    return errored, retryable


def ingest(request: BatchRequest, plan: BatchPlan, flow_run_id: str | None = None) -> IngestSummary:
    """Add the run, its items, bad rows and every shard's units to the ledger.

    All of it in one transaction, so readers see the whole run or none of it, and idempotent: a
    re-run adds only what is missing. Part objects go to the ledger as the JSONL bytes they are.
    """
    store, _ = open_store(request.output_uri)
    questions: list[Question] = []
    manifest: dict[str, Any] | None = None
    for shard_prefix in plan.shard_prefixes:
        questions += _shard_questions(store, shard_prefix)
        done_key = join_key(shard_prefix, "done.json")
        if manifest is None and store.exists(done_key):
            manifest = json.loads(store.read_bytes(done_key))
    errors = store.read_bytes(join_key(plan.output_prefix, "errors.jsonl")).decode().splitlines()
    bad_rows = [BadRow.model_validate_json(line) for line in errors if line.strip()]
    manifest = manifest or {"engine": request.engine.kind, "versions": {}, "profile": {}}
    # Read lazily: the ledger stages each part as it comes, so they are never all in memory.
    parts = (
        (key, store.read_bytes(key))
        for shard_prefix in plan.shard_prefixes
        for key in store.list(join_key(shard_prefix, "part-"))
    )
    run = RunRow(
        run_id=plan.run_id,
        fingerprint=request.fingerprint(),
        engine=manifest["engine"],
        engine_kind=request.engine.kind,
        seed=request.seed,
        request=request.model_dump(mode="json"),
        versions=manifest["versions"],
        prompts=manifest["profile"],
        started_at=plan.started_at,
        flow_run_id=flow_run_id,
    )
    with Ledger(request.ledger_path) as ledger:
        units, calls = ledger.ingest_run(run, questions, bad_rows, parts)
        names, rows = ledger.query(
            "SELECT count(*) AS units, coalesce(sum(completion_tokens), 0) AS completion_tokens, "
            "coalesce(sum(prompt_tokens), 0) AS prompt_tokens FROM item_decisions WHERE run_id = ?",
            [plan.run_id],
        )
    return IngestSummary(
        units,
        calls,
        ledger.spec.display,
        dict(zip(names, rows[0], strict=True)),
    )


@dataclass
class PublishedReport:
    """The report as built, and the URIs of its renderings keyed by format."""

    report: Report
    uris: dict[str, str]


def publish_report(request: BatchRequest, plan: BatchPlan) -> PublishedReport:
    """Build the run's report from the ledger and write it next to the run's objects."""
    from ttscale.reports.build import build_report
    from ttscale.reports.publish import publish_report as publish

    with Ledger(request.ledger_path, read_only=True) as ledger:
        # Only reads: retried whole while a SQLite catalog is busy with other runs' writers.
        report = retry_lake(build_report)(ledger.con, plan.run_id)
    store, _ = open_store(request.output_uri)
    published = PublishedReport(report, publish(report, store, report_prefix(plan.output_prefix)))
    with Ledger(request.ledger_path) as ledger:
        ledger.finish_run(plan.run_id, "completed")
    return published


def report_prefix(run_prefix: str) -> str:
    """Where a run's report renderings live: ``runs/<run_id>/report``."""
    return join_key(run_prefix, "report")
