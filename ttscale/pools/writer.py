"""Write a parsed pool into the ledger as a run, through the normal ingest (so it is idempotent).

The run holds the pool's items and one unit per item, ``majority`` with N = the item's sample
count, whose calls are the samples (phase "sample", one call each, as a live majority@N records
them), with their texts, answers, token counts and stored scores. Its decision is what replaying
majority@N on those samples gives, so the run reads like any other in reports and SQL, and
``ttscale replay RUN --strategy ...`` serves its samples to any replayable strategy.

Grading: every decision is graded by ttscale under the item's dataset rules. Where the pool
stores its own verdict per sample (Qwen's ``score``), the two are compared and disagreements are
counted in the import's summary and the run's request; the pool's verdicts are kept in the
items' metadata. ttscale's grading decides accuracy, so that every strategy replayed on the pool,
which may pick answers the tool never graded as a final answer, is graded by one rule.
"""

from __future__ import annotations

import asyncio
import gzip
import hashlib
import json
import re
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from ttscale.errors import ConfigError, InputError
from ttscale.grading import canonical_answer, extract_answer, is_correct
from ttscale.ledger import Ledger
from ttscale.ledger.staging import RunRow
from ttscale.pools import FORMATS
from ttscale.pools.model import ImportedItem, LineError, PoolFormat, read_lines
from ttscale.pools.tokens import TokenCounter
from ttscale.records import CallRecord, UnitDecision, UnitResult
from ttscale.schemas import BadRow, Question
from ttscale.storage import StorageNotFoundError, open_object
from ttscale.strategies.replay import PoolItem, PoolSample, replay_item

POOL_STRATEGY = "majority"
"""The unit kind the pool's samples are recorded under (what ``ttscale replay`` reads)."""
RUN_ID = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")
_EXAMPLES = 5


@dataclass(frozen=True)
class PoolImport:
    """What to import, and how."""

    source: str
    """A local path, ``file://`` or ``s3://`` URI of the pool's JSONL (gzipped or not)."""
    format: str
    ledger: str
    run_id: str | None = None
    """Default: ``pool-`` and a hash of the pool's bytes and these settings."""
    dataset: str | None = None
    """Grading rules for lines that name no dataset (default: the format's)."""
    tokenizer: str | None = None
    """Counts tokens the pool does not store (default: the embedded model's tokenizer)."""


@dataclass
class ParsedPool:
    """The valid items with their questions, and every line that was not usable."""

    items: list[tuple[ImportedItem, Question]] = field(default_factory=list)
    bad_rows: list[BadRow] = field(default_factory=list)
    other_variants: int = 0
    """Lines skipped as another view of an imported item (lm-eval: another filter)."""


@dataclass
class ImportSummary:
    run_id: str
    items: int
    samples: int
    bad_rows: list[BadRow]
    units_added: int
    calls_added: int
    pool: dict[str, Any]
    """What the run's request records about the pool (tokens, answers, verdicts, maj@k)."""


def parse_pool(data: bytes, uri: str, fmt: PoolFormat, dataset: str | None) -> ParsedPool:
    """Every line of the pool: an item with its question, or a bad row (object, line, field)."""
    parsed = ParsedPool()
    first_seen: dict[str, tuple[int, str | None]] = {}
    for line, row in read_lines(data, uri):
        if isinstance(row, BadRow):
            parsed.bad_rows.append(row)
            continue
        try:
            item = fmt.parse(row)
            item_id = item.item_id or f"line-{line}"
            question = Question(
                id=item_id,
                question=item.question,
                answer=item.gold,
                language=item.language or "en",
                dataset=item.dataset or dataset or fmt.default_dataset,
                metadata={"pool_line": line},
            )
        except LineError as exc:
            parsed.bad_rows.append(
                BadRow(object=uri, line=line, field=exc.field, reason=exc.reason)
            )
            continue
        except ValidationError as exc:
            error = exc.errors()[0]
            name = ".".join(str(p) for p in error["loc"]) or None
            parsed.bad_rows.append(BadRow(object=uri, line=line, field=name, reason=error["msg"]))
            continue
        if item_id in first_seen:
            first_line, variant = first_seen[item_id]
            if variant != item.variant:
                parsed.other_variants += 1
                continue
            reason = f"duplicate {fmt.id_field} {item_id!r} (first at line {first_line})"
            parsed.bad_rows.append(BadRow(object=uri, line=line, field=fmt.id_field, reason=reason))
            continue
        first_seen[item_id] = (line, item.variant)
        parsed.items.append((item, question))
    return parsed


NO_ANSWER = "[no answer]"
"""A sample the tool found no answer in ("" in Qwen's ``pred``). The tools that store answers
vote on it like any other (Qwen's maj@k counts "" as a group; lm-eval's majority filter counts
"[invalid]"), so an imported pool keeps it as this answer, which no gold equals, and replay's
votes match the tool's. ttscale's own extraction finding nothing is no answer (None)."""


def _answer(stored: str | None, text: str, dataset: str) -> str | None:
    """The sample's answer: the pool's own where it stores one, else ttscale's extraction."""
    if stored is not None:
        return stored if stored.strip() else NO_ANSWER
    answer = extract_answer(text, dataset)
    return answer if answer is not None and answer.strip() else None


def _token_counts(parsed: ParsedPool, counter: TokenCounter) -> tuple[list[list[int]], int]:
    """Per item, each sample's tokens: the pool's count, else counted; and how many were counted."""
    missing = [
        (i, j)
        for i, (item, _) in enumerate(parsed.items)
        for j, sample in enumerate(item.samples)
        if sample.completion_tokens is None
    ]
    counted = counter.count([parsed.items[i][0].samples[j].text for i, j in missing])
    tokens = [[s.completion_tokens or 0 for s in item.samples] for item, _ in parsed.items]
    for (i, j), count in zip(missing, counted, strict=True):
        tokens[i][j] = count
    return tokens, len(missing)


def _calls(item: ImportedItem, tokens: list[int], dataset: str) -> list[CallRecord]:
    # A free-running sample with no end-of-thinking delimiter counts as all thinking, as a live
    # run splits it; a pool stores no prompt, so its prompt tokens are unknown (0).
    return [
        CallRecord(
            sample_index=index,
            call_index=0,
            phase="sample",
            prompt_tokens=0,
            completion_tokens=count,
            thinking_tokens=count,
            answer_tokens=0,
            finish_reason="stop",
            stop_reason=None,
            latency_s=0.0,
            used=True,
            seed=None,
            cumulative_logprob=None,
            score=sample.score,
            extracted_answer=_answer(sample.answer, sample.text, dataset),
            completion_text=sample.text,
        )
        for index, (sample, count) in enumerate(zip(item.samples, tokens, strict=True))
    ]


async def _units(
    run_id: str, parsed: ParsedPool, tokens: list[list[int]], answers_stored: bool
) -> list[UnitResult]:
    """One majority@N unit per item, decided by replaying majority@N on its samples."""
    from ttscale.strategies.kinds.majority import MajorityConfig

    units = []
    for (item, question), counts in zip(parsed.items, tokens, strict=True):
        calls = _calls(item, counts, question.dataset)
        pool_item = PoolItem(
            item_id=question.id,
            dataset=question.dataset,
            gold=question.answer,
            samples=tuple(
                PoolSample(
                    c.extracted_answer, c.completion_tokens, c.score, None, c.completion_text
                )
                for c in calls
            ),
            source=(POOL_STRATEGY, len(calls)),
            question=question.question,
            answers_stored=answers_stored,
            imported=True,
        )
        n = len(calls)
        result = await replay_item(MajorityConfig(n=[n]), pool_item, n)
        decision = UnitDecision(
            result.final_answer, result.correct, result.stop_reason, result.samples_used,
            detail=result.detail,
        )  # fmt: skip
        units.append(UnitResult(run_id, question.id, POOL_STRATEGY, n, decision, calls))
    return units


def _verdicts(parsed: ParsedPool, fmt: PoolFormat) -> dict[str, Any]:
    """The pool's own verdicts against ttscale's grading of the same answers, and the pool's
    own maj@k (by the tool's rule) where it defines one."""
    graded = disagree = 0
    examples: list[dict[str, Any]] = []
    for item, question in parsed.items:
        for index, sample in enumerate(item.samples):
            if sample.verdict is None:
                continue
            graded += 1
            answer = _answer(sample.answer, sample.text, question.dataset)
            ours = is_correct(answer, question.answer, question.dataset)
            if ours != sample.verdict:
                disagree += 1
                if len(examples) < _EXAMPLES:
                    examples.append(
                        {"item": question.id, "sample": index, "answer": sample.answer,
                         "gold": question.answer, "pool": sample.verdict, "ttscale": ours}
                    )  # fmt: skip
    summary: dict[str, Any] = {
        "merged_answer_items": _merged_answer_items(parsed),
        "graded_samples": graded,
        "verdict_disagreements": disagree,
        "disagreement_examples": examples,
    }
    complete = parsed.items and all(
        s.verdict is not None and s.answer is not None
        for item, _ in parsed.items
        for s in item.samples
    )
    if fmt.own_majority_at_k is not None and complete:
        smallest = min(len(item.samples) for item, _ in parsed.items)
        ks = sorted({k for k in (1, 2, 4, 8, 16, 32, 64, 128, 256) if k <= smallest} | {smallest})
        summary["pool_majority_at_k"] = {
            str(k): sum(
                fmt.own_majority_at_k(
                    [str(s.answer) for s in item.samples],
                    [bool(s.verdict) for s in item.samples],
                    k,
                )
                for item, _ in parsed.items
            )
            / len(parsed.items)
            for k in ks
        }
    return summary


def _merged_answer_items(parsed: ParsedPool) -> int:
    """Items where two different stored answers vote together under ttscale's dataset rules
    ("0.5" and "\\frac{1}{2}"), which a tool voting on exact strings counts apart: there its
    maj@k and replay's may differ."""
    merged = 0
    for item, question in parsed.items:
        answers = {s.answer for s in item.samples if s.answer and s.answer.strip()}
        keys = {canonical_answer(a, question.dataset) for a in answers}
        merged += len(keys) < len(answers)
    return merged


GZIP_MAGIC = b"\x1f\x8b"


def read_pool(source: str) -> bytes:
    """The pool's JSONL bytes; gzip (``.gz``, or gzip's magic bytes under any name) is unpacked,
    so a pool and its gzipped copy import as the same run."""
    store, key = open_object(source)
    try:
        data = store.read_bytes(key)
    except StorageNotFoundError:
        raise InputError(f"no pool at {source}") from None
    if data.startswith(GZIP_MAGIC) or source.endswith(".gz"):
        try:
            return gzip.decompress(data)
        except (OSError, EOFError) as exc:  # BadGzipFile is an OSError; a cut file is EOFError
            raise InputError(f"{source} is not a readable gzip file: {exc}") from None
    return data


def import_pool(request: PoolImport) -> ImportSummary:
    """Import the pool ``request`` names into its ledger; a second import adds nothing.

    Raises ``ConfigError`` for an unknown format or a bad run id, ``InputError`` when the pool
    cannot be read or holds no valid line. Bad lines are in the summary and the run's
    ``input_errors``; the rest is imported.
    """
    fmt = FORMATS.get(request.format)
    if fmt is None:
        raise ConfigError(f"unknown pool format {request.format!r}; known: {sorted(FORMATS)}")
    if request.run_id is not None and not RUN_ID.match(request.run_id):
        raise ConfigError(f"--run-id must match {RUN_ID.pattern}, not {request.run_id!r}")
    data = read_pool(request.source)
    parsed = parse_pool(data, request.source, fmt, request.dataset)
    if not parsed.items:
        first = parsed.bad_rows[0] if parsed.bad_rows else None
        why = f"; the first bad line: {first.line} ({first.field}): {first.reason}" if first else ""
        raise InputError(
            f"no valid line in {request.source} ({len(parsed.bad_rows)} bad lines){why}"
        )
    counter = TokenCounter(request.tokenizer) if request.tokenizer else TokenCounter()
    tokens, counted = _token_counts(parsed, counter)
    settings = {
        "format": fmt.name, "dataset": request.dataset, "tokenizer": counter.spec,
        "sha256": hashlib.sha256(data).hexdigest(),
    }  # fmt: skip
    fingerprint = hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()
    run_id = request.run_id or f"pool-{fingerprint[:12]}"
    answers_stored = fmt.answers_stored
    units = asyncio.run(_units(run_id, parsed, tokens, answers_stored))
    samples = sum(len(item.samples) for item, _ in parsed.items)
    pool = {
        **settings,
        "source": request.source,
        "answers": "pool" if answers_stored else "ttscale",
        "items": len(parsed.items),
        "samples": samples,
        "token_counts": {
            "from_pool": samples - counted,
            "counted": counted,
            "tokenizer": counter.spec if counted else None,
            "tokenizer_path": counter.resolved,
        },
        "other_variant_lines": parsed.other_variants,
        **_verdicts(parsed, fmt),
    }
    questions = [
        question.model_copy(update={"metadata": _item_metadata(question, item)})
        for item, question in parsed.items
    ]
    from importlib.metadata import version

    run = RunRow(
        run_id=run_id,
        fingerprint=fingerprint,
        engine=f"pool:{fmt.name}",
        engine_kind="pool",
        seed=0,
        request={"pool": pool},
        versions={"ttscale": version("ttscale"), "tokenizer": pool["token_counts"]["tokenizer"]},
        prompts={},
    )
    with Ledger(request.ledger) as ledger:
        units_added, calls_added = ledger.ingest_run(
            run,
            questions,
            parsed.bad_rows,
            [(f"pool:{request.source}", [u.to_json() for u in units])],
        )
        if units_added:
            ledger.finish_run(run_id, "completed")
    return ImportSummary(
        run_id, len(parsed.items), samples, parsed.bad_rows, units_added, calls_added, pool
    )


def _item_metadata(question: Question, item: ImportedItem) -> dict[str, Any]:
    """The item's line, and what the pool stores per sample that no ledger column holds."""
    metadata = dict(question.metadata)
    verdicts = [s.verdict for s in item.samples]
    if any(v is not None for v in verdicts):
        metadata["pool_verdicts"] = verdicts
    confidences = [s.confidence for s in item.samples]
    if any(c is not None for c in confidences):
        metadata["pool_confidence"] = confidences
    return metadata


def imported_pool(ledger: Ledger, run_id: str) -> tuple[bool, bool]:
    """(imported, answers stored): whether ``run_id`` is an imported pool, and whether its
    answers are the tool's own (replay votes on them rather than re-reading the texts)."""
    _, rows = ledger.query("SELECT engine_kind, request_json FROM runs WHERE run_id = ?", [run_id])
    if not rows or rows[0][0] != "pool":
        return False, False
    return True, json.loads(rows[0][1]).get("pool", {}).get("answers") == "pool"
