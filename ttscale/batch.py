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
from pathlib import Path
from typing import Any

from ttscale.engines import model_name
from ttscale.engines.base import Engine
from ttscale.engines.host import engine_host
from ttscale.errors import InputError, ObjectExistsError
from ttscale.inputs import load_batch
from ttscale.ledger import Ledger
from ttscale.prompts import resolve_profile
from ttscale.runner import (
    PartWriter,
    ProgressFn,
    expand_units,
    read_parts,
    run_shard_units,
    unit_key,
)
from ttscale.schemas import BadRow, BatchRequest, Question
from ttscale.storage import ObjectStore, join_key, open_store


@dataclass
class BatchPlan:
    """What ``plan_batch`` laid out: the run and its shards."""

    run_id: str
    items: int
    bad_rows: int
    shard_prefixes: list[str]
    errors_uri: str
    output_prefix: str


@dataclass
class ShardSummary:
    shard_prefix: str
    units_run: int
    units_skipped: int
    skipped_whole: bool = False


@dataclass
class IngestSummary:
    units_added: int
    calls_added: int
    ledger_path: str
    totals: dict[str, Any] = field(default_factory=dict)


def _run_prefix(request: BatchRequest, store_prefix: str) -> str:
    return join_key(store_prefix, "runs", request.resolved_run_id())


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
    prefix = _run_prefix(request, base)
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
    shard_prefixes = []
    for index, start in enumerate(range(0, len(questions), request.shard_size)):
        shard_prefix = join_key(prefix, "shards", f"{index:05d}")
        rows = [q.model_dump() for q in questions[start : start + request.shard_size]]
        _write_once(
            store, join_key(shard_prefix, "input.jsonl"), _jsonl(rows), "application/x-ndjson"
        )
        shard_prefixes.append(shard_prefix)
    return BatchPlan(
        run_id=request.resolved_run_id(),
        items=len(questions),
        bad_rows=len(batch.bad_rows),
        shard_prefixes=shard_prefixes,
        errors_uri=store.uri(errors_key),
        output_prefix=prefix,
    )


def run_shard(
    request: BatchRequest, shard_prefix: str, progress: ProgressFn | None = None
) -> ShardSummary:
    """Run every unfinished unit of one shard on this process's engine.

    Re-running is safe: a finished shard is skipped whole, a partly finished one resumes.
    """
    store, _ = open_store(request.output_uri)
    done_key = join_key(shard_prefix, "done.json")
    if store.exists(done_key):
        return ShardSummary(shard_prefix, 0, 0, skipped_whole=True)
    questions = _shard_questions(store, shard_prefix)
    finished = {unit_key(r) for _, records in read_parts(store, shard_prefix) for r in records}
    units = expand_units(request.strategies)
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


def ingest(request: BatchRequest, plan: BatchPlan) -> IngestSummary:
    """Add the run, its items, bad rows and every shard's units to the ledger (idempotent)."""
    store, _ = open_store(request.output_uri)
    questions: list[Question] = []
    manifest: dict[str, Any] | None = None
    parts = []
    for shard_prefix in plan.shard_prefixes:
        questions += _shard_questions(store, shard_prefix)
        done_key = join_key(shard_prefix, "done.json")
        if manifest is None and store.exists(done_key):
            manifest = json.loads(store.read_bytes(done_key))
        parts += read_parts(store, shard_prefix)
    errors = store.read_bytes(join_key(plan.output_prefix, "errors.jsonl")).decode().splitlines()
    bad_rows = [BadRow.model_validate_json(line) for line in errors if line.strip()]
    manifest = manifest or {"engine": request.engine.kind, "versions": {}, "profile": {}}
    with Ledger(request.ledger_path) as ledger:
        ledger.record_run(
            run_id=plan.run_id,
            fingerprint=request.fingerprint(),
            engine=manifest["engine"],
            engine_kind=request.engine.kind,
            seed=request.seed,
            request=request.model_dump(mode="json"),
            versions=manifest["versions"],
            prompts=manifest["profile"],
        )
        ledger.add_items(plan.run_id, questions)
        ledger.add_input_errors(plan.run_id, bad_rows)
        units, calls = ledger.ingest_units(parts)
        names, rows = ledger.query(
            "SELECT count(*) AS units, coalesce(sum(completion_tokens), 0) AS completion_tokens, "
            "coalesce(sum(prompt_tokens), 0) AS prompt_tokens FROM item_decisions WHERE run_id = ?",
            [plan.run_id],
        )
    return IngestSummary(
        units,
        calls,
        str(Path(request.ledger_path).resolve()),
        dict(zip(names, rows[0], strict=True)),
    )


def publish_report(request: BatchRequest, plan: BatchPlan) -> dict[str, str]:
    """Build the run's report from the ledger and write it next to the run's objects."""
    from ttscale.reports.build import build_report
    from ttscale.reports.publish import publish_report as publish

    with Ledger(request.ledger_path) as ledger:
        report = build_report(ledger.con, plan.run_id)
    store, _ = open_store(request.output_uri)
    return publish(report, store, join_key(plan.output_prefix, "report"))
