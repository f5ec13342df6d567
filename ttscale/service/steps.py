"""The steps of one run as plain calls on its ``RunContext``: plan, run a shard, ingest, report.

Prefect flows (``flows/``) and ``run_batch`` (one process, ``ttscale run``) sequence them.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from ttscale.engines.base import Engine
from ttscale.engines.host import engine_host
from ttscale.errors import InputError, ObjectExistsError, UnitsFailedError
from ttscale.inputs import LoadedBatch, load_input
from ttscale.ledger import Ledger
from ttscale.ledger.staging import RunRow
from ttscale.records import UnitKey, UnitResult
from ttscale.runner import ProgressFn, run_shard_units
from ttscale.schemas import BadRow, Question
from ttscale.service.context import RunContext
from ttscale.service.layout import ShardLayout
from ttscale.service.parts import PartWriter, object_content, part_contents, read_parts
from ttscale.storage import ObjectStore
from ttscale.strategies.sample_cache import SampleCache

if TYPE_CHECKING:
    from ttscale.reports.model import Report

Logger = logging.Logger | logging.LoggerAdapter[Any]
"""A standard logger, or Prefect's run logger (an adapter)."""


@dataclass
class BatchPlan:
    """What ``plan_batch`` laid out: the run and its shards."""

    run_id: str
    items: int
    bad_rows: int
    shards: list[ShardLayout]
    errors_uri: str
    shard_items: list[int] = field(default_factory=list)
    """Items in each shard, in the order of ``shards``."""
    started_at: datetime | None = None
    units_per_item: int = 0
    """One per strategy × budget."""

    @property
    def total_units(self) -> int:
        return self.items * self.units_per_item


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
    generated: dict[str, int] = field(default_factory=dict)
    """``Ledger.generation_totals``: what the engine generated, as the parts' lines say, every
    attempt included (the ledger's ``runs.tokens_generated`` counts the calls it keeps)."""


@dataclass
class PublishedReport:
    """The report as built, and the URIs of its renderings keyed by format."""

    report: Report
    uris: dict[str, str]


@dataclass(frozen=True)
class UnitFailures:
    """Units whose every attempt errored, and how many of those a retry may fix."""

    errored: int
    retryable: int
    total: int


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


def shard_questions(ctx: RunContext, shard: ShardLayout) -> list[Question]:
    """The questions ``plan_batch`` wrote for ``shard``."""
    lines = ctx.output.read_bytes(shard.input).decode().splitlines()
    return [Question.model_validate_json(line) for line in lines if line.strip()]


def sample_cache_enabled() -> bool:
    """Whether shards share generations between units (``TTSCALE_SAMPLE_CACHE=0`` turns it off,
    e.g. to measure the cost without it). Off or on, every unit's result is the same."""
    return os.environ.get("TTSCALE_SAMPLE_CACHE", "1").strip().lower() not in {"0", "off", "false"}


def plan_batch(ctx: RunContext, loaded: LoadedBatch | None = None) -> BatchPlan:
    """Load and validate the input (unless ``loaded`` already holds it), then write the request,
    the errors object and one input object per shard."""
    request, store, layout = ctx.request, ctx.output, ctx.layout
    batch = loaded if loaded is not None else load_input(ctx.input)
    questions = batch.questions[: request.max_items] if request.max_items else batch.questions
    store.write_bytes(
        layout.request, request.model_dump_json(indent=2).encode(), content_type="application/json"
    )
    store.write_bytes(
        layout.errors,
        _jsonl([b.model_dump() for b in batch.bad_rows]),
        content_type="application/x-ndjson",
    )
    shards, shard_items = [], []
    for index, start in enumerate(range(0, len(questions), request.shard_size)):
        shard = layout.shard(index)
        rows = [q.model_dump() for q in questions[start : start + request.shard_size]]
        _write_once(store, shard.input, _jsonl(rows), "application/x-ndjson")
        shards.append(shard)
        shard_items.append(len(rows))
    return BatchPlan(
        run_id=ctx.run_id,
        items=len(questions),
        bad_rows=len(batch.bad_rows),
        shards=shards,
        errors_uri=store.uri(layout.errors),
        shard_items=shard_items,
        started_at=datetime.now(UTC),
        units_per_item=len(ctx.units),
    )


def run_shard(
    ctx: RunContext, shard: ShardLayout, progress: ProgressFn | None = None
) -> ShardSummary:
    """Run every unfinished unit of one shard on this process's engine.

    Re-running is safe: a finished shard is skipped whole, a partly finished one resumes.
    ``progress`` gets running totals (units, completion tokens), resumed units included.
    """
    store, units = ctx.output, list(ctx.units)
    if store.exists(shard.done):
        if progress:
            progress(len(shard_questions(ctx, shard)) * len(units), 0)
        return ShardSummary(shard.prefix, 0, 0, skipped_whole=True)
    questions = shard_questions(ctx, shard)
    # Every record of earlier attempts: the settled units are skipped, and all of them (errored
    # ones too) refill the shard's sample cache. Errored units that a retry may fix are not
    # finished: this attempt runs them again.
    earlier = [result for _, results in read_parts(store, shard) for result in results]
    finished = {result.key for result in earlier if result.settled}
    if progress:
        # Resumed units count as done, so a resumed run's progress starts where it stopped.
        resumed, report_progress = len(finished), progress
        report_progress(resumed, 0)

        def progress(units: int, tokens: int) -> None:
            report_progress(resumed + units, tokens)

    profile = ctx.profile
    writer = PartWriter(store, shard)

    async def work(engine: Engine) -> tuple[int, dict[str, Any]]:
        ran = await run_shard_units(
            engine,
            profile,
            questions,
            units,
            run_id=ctx.run_id,
            run_seed=ctx.request.seed,
            skip=finished,
            writer=writer,
            progress=progress,
            cache=SampleCache() if sample_cache_enabled() else None,
            finished=earlier,
        )
        return ran, {"engine": engine.name, "versions": engine.versions()}

    ran, engine_info = engine_host().run(ctx.engine, work)
    if writer.unsettled:
        # No done.json: the next attempt (a re-run of the batch) retries the errored units.
        return ShardSummary(shard.prefix, ran, len(finished), units_errored=writer.unsettled)
    manifest = engine_info | {
        "engine_kind": ctx.engine.kind,
        "profile": profile.as_dict(),
        "parts": store.list(shard.parts),
    }
    # Another attempt of this shard may have finished first; its parts are equally valid.
    with contextlib.suppress(ObjectExistsError):
        store.write_bytes(
            shard.done,
            json.dumps(manifest).encode(),
            content_type="application/json",
            create_only=True,
        )
    return ShardSummary(shard.prefix, ran, len(finished))


def unit_failures(ctx: RunContext, plan: BatchPlan) -> UnitFailures:
    """Units whose every attempt so far errored, and how many of those a retry may fix (their
    shards stay unfinished, so a re-run runs them again)."""
    errored = retryable = 0
    for shard in plan.shards:
        attempts: dict[UnitKey, list[UnitResult]] = {}
        for _, results in read_parts(ctx.output, shard):
            for result in results:
                attempts.setdefault(result.key, []).append(result)
        for results in attempts.values():
            if all(r.error is not None for r in results):
                errored += 1
                retryable += not any(r.settled for r in results)
    return UnitFailures(errored, retryable, plan.total_units)


def check_unit_failures(ctx: RunContext, plan: BatchPlan, logger: Logger) -> UnitFailures:
    """Raise UnitsFailedError when more units errored than ``fail_on_error`` allows (then
    nothing is ingested); otherwise warn on ``logger`` about those that did, and return the counts.

    Below the threshold the run goes on; its errored units are reported apart from the answers,
    and their shards stay unfinished, so running the same batch again retries them.
    """
    failures = unit_failures(ctx, plan)
    errored, total, allowed = failures.errored, failures.total, ctx.request.fail_on_error
    if errored and errored > allowed * total:
        retry = (
            f"their attempts are kept under {ctx.layout.shards}: run the same batch again to "
            "retry them"
            if failures.retryable
            else "the engine refused them (a retry would not help): see the parts' errors"
        )
        raise UnitsFailedError(
            f"{errored} of {total} units failed ({errored / max(total, 1):.0%}, "
            f"fail_on_error allows {allowed:.0%}); {retry}"
        )
    if errored:
        logger.warning(
            "%d of %d units failed (%d retryable); reported apart",
            errored, total, failures.retryable,
        )  # fmt: skip
    return failures


def ingest(ctx: RunContext, plan: BatchPlan, flow_run_id: str | None = None) -> IngestSummary:
    """Add the run, its items, bad rows and every shard's units to the ledger.

    All of it in one transaction, so readers see the whole run or none of it, and idempotent: a
    re-run adds only what is missing. DuckDB reads the part and shard input objects as the JSONL
    they are: none is parsed or validated again in Python.
    """
    request, store = ctx.request, ctx.output
    manifest: dict[str, Any] | None = None
    for shard in plan.shards:
        if manifest is None and store.exists(shard.done):
            manifest = json.loads(store.read_bytes(shard.done))
    errors = store.read_bytes(ctx.layout.errors).decode().splitlines()
    bad_rows = [BadRow.model_validate_json(line) for line in errors if line.strip()]
    manifest = manifest or {"engine": ctx.engine.kind, "versions": {}, "profile": {}}
    # Read lazily: the ledger stages each part as it comes, so they are never all in memory.
    parts = part_contents(store, plan.shards)
    inputs = ((shard.input, object_content(store, shard.input)) for shard in plan.shards)
    run = RunRow(
        run_id=plan.run_id,
        fingerprint=request.fingerprint(),
        engine=manifest["engine"],
        engine_kind=ctx.engine.kind,
        seed=request.seed,
        request=request.model_dump(mode="json"),
        versions=manifest["versions"],
        prompts=manifest["profile"],
        started_at=plan.started_at,
        flow_run_id=flow_run_id,
        model=getattr(ctx.engine, "model", None),
    )
    with Ledger(ctx.ledger_path) as ledger:
        units, calls = ledger.ingest_run(run, (), bad_rows, parts, question_parts=inputs)
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
        ledger.generation_totals,
    )


def publish_report(ctx: RunContext, plan: BatchPlan) -> PublishedReport:
    """Build the run's report from the ledger, write it next to the run's objects, record its
    figures in the ledger (replacing any earlier report's), and mark the run completed."""
    from ttscale.ledger.report_data import build_report_from_ledger, report_settings
    from ttscale.reports.publish import publish_report as publish

    settings = report_settings(ctx.request.report)
    with Ledger(ctx.ledger_path, read_only=True) as ledger:
        report = build_report_from_ledger(ledger.con, plan.run_id, settings)
    published = PublishedReport(report, publish(report, ctx.output, ctx.layout.report))
    with Ledger(ctx.ledger_path) as ledger:
        ledger.record_report(report)
        ledger.finish_run(plan.run_id, "completed")
    return published
