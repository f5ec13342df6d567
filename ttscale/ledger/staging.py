"""How an ingest is staged: the NDJSON files DuckDB reads a run's records from, and the SQL
that reads them. ``Ledger`` runs these inside one transaction.

The records are never parsed or re-encoded in Python: each part's JSONL is appended whole to a
batch file (a local store's object copied by the kernel, ``os.sendfile``), in part key order,
and DuckDB reads a batch file in one ``read_json`` scan (one file, not one per part: DuckDB pays
per file) with insertion order kept, so a record's rowid orders it as its part's key does.
Parts are taken in batches of about ``INGEST_BATCH_BYTES``, so memory stays bounded however big
the run. Items come from the shard input objects the same way; bad rows go through one small
NDJSON file.
"""

from __future__ import annotations

import itertools
import json
import os
import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, BinaryIO

from ttscale.schemas import BadRow, Question

Part = tuple[str, bytes | Path | Sequence[dict[str, Any]]]
"""A shard part ``(source, content)``: its object key and its JSONL bytes, the local file that
holds them, or parsed records."""
INGEST_BATCH_BYTES = 256 * 2**20
"""How much part JSONL one ingest step reads at a time (DuckDB holds a batch's units in memory)."""

_KEY = ("run_id", "item_id", "strategy", "budget")
# The fields of one call in a unit record's ``calls``, as generation_calls stores them.
CALL_FIELDS = {
    "sample_index": "INTEGER", "call_index": "INTEGER", "phase": "VARCHAR",
    "prompt_tokens": "INTEGER", "completion_tokens": "INTEGER", "thinking_tokens": "INTEGER",
    "answer_tokens": "INTEGER", "finish_reason": "VARCHAR", "stop_reason": "VARCHAR",
    "latency_s": "DOUBLE", "used": "BOOLEAN", "seed": "BIGINT", "cumulative_logprob": "DOUBLE",
    "score": "DOUBLE", "extracted_answer": "VARCHAR", "completion_text": "VARCHAR",
    "mean_confidence": "DOUBLE", "lowest_group_confidence": "DOUBLE", "tail_confidence": "DOUBLE",
    "cached": "BOOLEAN", "generated_tokens": "INTEGER",
}  # fmt: skip
# The fields of a unit record (records.UnitResult.to_json) other than its calls. Unknown keys are ignored.
UNIT_FIELDS = {
    "run_id": "VARCHAR", "item_id": "VARCHAR", "strategy": "VARCHAR", "budget": "INTEGER",
    "final_answer": "VARCHAR", "correct": "BOOLEAN", "stop_reason": "VARCHAR",
    "samples_used": "INTEGER", "answered_language": "VARCHAR", "detail": "JSON",
    "error": "VARCHAR",
}  # fmt: skip
_TOKENS = ("prompt_tokens", "completion_tokens", "thinking_tokens", "answer_tokens")


def _struct(fields: dict[str, str]) -> str:
    return "STRUCT(" + ", ".join(f"{name} {kind}" for name, kind in fields.items()) + ")"


def _columns(fields: dict[str, str]) -> str:
    """A ``read_json`` columns literal; every line is read with these, and only these, keys."""
    return "{" + ", ".join(f"'{name}': '{kind}'" for name, kind in fields.items()) + "}"


_UNIT_FIELDS = UNIT_FIELDS | {"calls": _struct(CALL_FIELDS) + "[]"}
_KEY_COLS = ", ".join(_KEY)
_KEY_MATCH = " AND ".join(f"d.{k} = u.{k}" for k in _KEY)
_CALL_COLS = ", ".join([*_KEY, *CALL_FIELDS])

# Each statement runs on its own, in order, inside the ingest's transaction, once per batch of
# parts, after INGEST_UNITS_SQL has read the batch (``stage_parts``). The records are staged
# once, nested as written; only the chosen units' row ids are copied after that.
# DuckLake has no PRIMARY KEY or UNIQUE: a unit's key is kept unique here, by deleting what this
# ingest replaces and inserting only units the ledger does not hold (an anti-join), in one
# transaction, so running it again changes nothing.
# What the staged part lines say the engine generated, every line counted (every attempt,
# superseded ones included, which the ledger's call rows drop): calls, calls served from the
# sample cache, and tokens generated (``records.generated_tokens``: older calls count all of
# theirs). Read from ``ingest_units`` inside the ingest, so the parts are parsed once, by DuckDB.
GENERATION_TOTALS_SQL = """SELECT
    coalesce(sum(len(calls)), 0),
    coalesce(sum(len(list_filter(calls, lambda c: coalesce(c.cached, false)))), 0),
    coalesce(sum(list_sum(list_transform(
        calls, lambda c: coalesce(c.generated_tokens, c.completion_tokens)))), 0)
FROM ingest_units"""
GENERATION_TOTAL_NAMES = ("calls", "calls_cached", "tokens_generated")

# The staged batch's file replaces $file (``StagedBatch.sql``). Read with insertion order kept,
# so a row's rowid is its line's place in the batch, the order of its part's key (``stage_parts``).
INGEST_UNITS_SQL = f"""CREATE OR REPLACE TEMP TABLE ingest_units AS
    SELECT * FROM read_json($file, format='newline_delimited', records=true,
                            columns={_columns(_UNIT_FIELDS)})"""
INGEST_CHOOSE_SQL: tuple[str, ...] = (
    # A unit the ledger holds as errored is replaced when a retry of it succeeded: the ledger's
    # decision is the unit's outcome (the errored attempt stays in its part object).
    f"""CREATE OR REPLACE TEMP TABLE ingest_healed AS
    SELECT DISTINCT {", ".join(f"u.{k}" for k in _KEY)} FROM ingest_units u
    JOIN item_decisions d ON {_KEY_MATCH}
    WHERE d.stop_reason = 'error' AND u.error IS NULL""",
    f"""DELETE FROM generation_calls c USING ingest_healed h
    WHERE {" AND ".join(f"c.{k} = h.{k}" for k in _KEY)}""",
    f"""DELETE FROM item_decisions d USING ingest_healed h
    WHERE {" AND ".join(f"d.{k} = h.{k}" for k in _KEY)}""",
    # One record per unit, and none for a unit already in the ledger. A unit may have several:
    # a retry after an errored attempt (the success wins) or a zombie worker's second copy (the
    # part first by name wins).
    f"""CREATE OR REPLACE TEMP TABLE ingest_chosen AS
    SELECT arg_min(u.rowid, (u.error IS NOT NULL, u.rowid)) AS uid FROM ingest_units u
    WHERE NOT EXISTS (SELECT 1 FROM item_decisions d WHERE {_KEY_MATCH})
    GROUP BY {_KEY_COLS}""",
)
# DuckLake has no CHECK constraints: the calls about to be added are checked here instead, and a
# count above 0 fails the ingest before anything is inserted.
INGEST_CHECK_SQL = """SELECT count(*) FROM (
    SELECT unnest(calls) AS c FROM ingest_units WHERE rowid IN (SELECT uid FROM ingest_chosen))
    WHERE c.completion_tokens <> c.thinking_tokens + c.answer_tokens"""
INGEST_INSERT_SQL: tuple[str, ...] = (
    f"""INSERT INTO generation_calls ({_CALL_COLS})
    SELECT {_KEY_COLS}, unnest(calls, recursive := true)
    FROM ingest_units WHERE rowid IN (SELECT uid FROM ingest_chosen)""",
    # Decision totals are sums over the unit's own call rows, never the record's say-so. The
    # detail is the record's JSON value itself (encoded once), {} when it has none.
    f"""INSERT INTO item_decisions
    SELECT run_id, item_id, strategy, budget, final_answer, correct, stop_reason, samples_used,
           coalesce(len(calls), 0),
           {", ".join(f"coalesce(list_sum([c.{t} FOR c IN calls]), 0)" for t in _TOKENS)},
           answered_language, coalesce(detail, '{{}}'::JSON), error
    FROM ingest_units WHERE rowid IN (SELECT uid FROM ingest_chosen)""",
)
INGEST_COUNTS_SQL = """SELECT count(*), coalesce(sum(len(calls)), 0)
    FROM ingest_units WHERE rowid IN (SELECT uid FROM ingest_chosen)"""
# Batched, a unit an earlier batch added errored may be healed by a later one: it is then added
# once, not twice. ``ingest_added`` holds the keys this ingest added; REHEALED counts what a batch
# is about to replace of them (before the deletes), ADDED_TRACK records the batch's additions.
INGEST_ADDED_SQL = f"""CREATE OR REPLACE TEMP TABLE ingest_added AS
    SELECT {_KEY_COLS} FROM item_decisions WHERE false"""
INGEST_REHEALED_SQL = f"""SELECT count(*), coalesce(sum(d.calls), 0) FROM ingest_healed h
    JOIN ingest_added a USING ({_KEY_COLS}) JOIN item_decisions d USING ({_KEY_COLS})"""
INGEST_ADDED_TRACK_SQL = f"""INSERT INTO ingest_added SELECT {_KEY_COLS}
    FROM ingest_units WHERE rowid IN (SELECT uid FROM ingest_chosen)"""
INGEST_CLEANUP_SQL = (
    "DROP TABLE IF EXISTS ingest_units",
    "DROP TABLE IF EXISTS ingest_chosen",
    "DROP TABLE IF EXISTS ingest_healed",
)

_ITEM_FIELDS = {
    "ord": "BIGINT", "item_id": "VARCHAR", "dataset": "VARCHAR", "language": "VARCHAR",
    "question": "VARCHAR", "gold": "VARCHAR", "metadata_json": "VARCHAR",
}  # fmt: skip
# An item id given twice in one call keeps its first row, as one-by-one inserts did; an item the
# ledger holds keeps its row (an anti-join: the lake has no keys to ignore conflicts on).
ITEMS_SQL = f"""INSERT INTO items SELECT s.* FROM (
    SELECT ?::VARCHAR AS run_id, item_id, dataset, language, question, gold, metadata_json::JSON
    FROM read_json(?, format='newline_delimited', columns={_columns(_ITEM_FIELDS)})
    QUALIFY row_number() OVER (PARTITION BY item_id ORDER BY ord) = 1) s
    WHERE NOT EXISTS (SELECT 1 FROM items i WHERE i.run_id = s.run_id AND i.item_id = s.item_id)"""

# The questions of shard input objects (``Question`` records, as ``plan_batch`` writes them), read
# as they are: a run's items are not validated again. The ? is the run id; $file as above.
# Ids are unique in a batch (``load_input`` refuses a second); of two anyway, one row is kept.
_QUESTION_FIELDS = {
    "id": "VARCHAR", "dataset": "VARCHAR", "language": "VARCHAR", "question": "VARCHAR",
    "answer": "VARCHAR", "metadata": "JSON",
}  # fmt: skip
ITEMS_FROM_INPUTS_SQL = f"""INSERT INTO items SELECT s.* FROM (
    SELECT ?::VARCHAR AS run_id, id AS item_id, dataset, language, question, answer AS gold,
           coalesce(metadata, '{{}}'::JSON) AS metadata_json
    FROM read_json($file, format='newline_delimited', records=true,
                   columns={_columns(_QUESTION_FIELDS)})
    QUALIFY row_number() OVER (PARTITION BY id) = 1) s
    WHERE NOT EXISTS (SELECT 1 FROM items i WHERE i.run_id = s.run_id AND i.item_id = s.item_id)"""

_BAD_ROW_FIELDS = {
    "ord": "BIGINT", "object": "VARCHAR", "line": "INTEGER", "field": "VARCHAR",
    "reason": "VARCHAR",
}  # fmt: skip
INPUT_ERRORS_SQL = f"""INSERT INTO input_errors SELECT s.* FROM (
    SELECT ?::VARCHAR AS run_id, object, line, field, reason
    FROM read_json(?, format='newline_delimited', columns={_columns(_BAD_ROW_FIELDS)})
    QUALIFY row_number() OVER (PARTITION BY object, line ORDER BY ord) = 1) s
    WHERE NOT EXISTS (SELECT 1 FROM input_errors e
                      WHERE e.run_id = s.run_id AND e.object = s.object AND e.line = s.line)"""

# First in every ingest transaction: overlapping ingests conflict, so they serialise (migration 4).
INGEST_LOCK_SQL = "UPDATE ingest_lock SET ingests = ingests + 1"

# The run's first row stays: inserted only when the ledger has no row for the run (last ?).
RUN_SQL = (
    "INSERT INTO runs (run_id, created_at, fingerprint, engine, engine_kind, "
    "seed, request_json, versions_json, prompts_json, started_at, status, flow_run_id, "
    "ttscale_version, model) SELECT ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'ingested', ?, ?, ? "
    "WHERE NOT EXISTS (SELECT 1 FROM runs WHERE run_id = ?)"
)

# Both costs of each run in ? (a list of run ids), from its call rows. Attributed: every call's
# completion tokens, as each unit counts them. Generated: what the engine produced. A generation
# is accounted on exactly one call (``sample_cache``), which need not be the uncached one: a
# budget served as a prefix of a longer request is ``cached`` and may carry the longer one's
# tokens, while the longer request, asked later, carries 0. So the sum is over every call, not
# over the uncached ones; calls from before the cache (NULL) generated all of theirs.
RUN_TOKENS_SQL = """UPDATE runs SET
    tokens_attributed = t.attributed, tokens_generated = t.generated
FROM (SELECT run_id, sum(completion_tokens) AS attributed,
             sum(coalesce(generated_tokens, completion_tokens)) AS generated
      FROM generation_calls WHERE run_id IN (SELECT unnest(?::VARCHAR[])) GROUP BY run_id) t
WHERE runs.run_id = t.run_id"""


@dataclass(frozen=True)
class StagedPart:
    """Where a part's records are in a batch file: its key, byte offset and length."""

    source: str
    offset: int
    length: int


@dataclass(frozen=True)
class StagedBatch:
    """One NDJSON file DuckDB reads in one ``read_json`` scan: whole parts, in key order."""

    file: Path
    parts: list[StagedPart]

    def sql(self, template: str) -> str:
        """``template`` (``INGEST_UNITS_SQL``, ``ITEMS_FROM_INPUTS_SQL``) reading this file."""
        return template.replace("$file", "'" + str(self.file).replace("'", "''") + "'")

    def name_parts(self, message: str) -> str:
        """``message`` (DuckDB's, quoting this file and a line of it) naming the part and its
        line instead, so an error points at the object, not at a temporary file."""
        quoted = f'"{self.file}"'
        match = re.search(re.escape(quoted) + r", in line (\d+)", message)
        if match is None:
            return message.replace(quoted, "a staged batch of parts")
        line, first = int(match[1]), 1
        with self.file.open("rb") as staged:
            for part in self.parts:
                staged.seek(part.offset)
                lines = staged.read(part.length).count(b"\n")
                if line < first + lines:
                    where = f'"{part.source}", in line {line - first + 1}'
                    return message.replace(match[0], where)
                first += lines
        return message


Content = bytes | tuple[Path, int, int]
"""A part's records while staged: bytes, or a byte range of a file ``(file, offset, length)``."""


def _contents(parts: Iterable[Part]) -> Iterator[tuple[str, Content]]:
    """Each part with a record, as ``(key, content)``: records are encoded once each, and a
    local file is a range of it (copied by the kernel, never read into Python)."""
    for source, content in parts:
        if isinstance(content, Path):
            size = content.stat().st_size
            if size:
                yield source, (content, 0, size)
            continue
        if not isinstance(content, bytes):
            content = b"".join(json.dumps(r, ensure_ascii=False).encode() + b"\n" for r in content)
        if content.strip():
            yield source, content


def _append(out: BinaryIO, content: Content) -> int:
    """``content`` appended to ``out`` (unbuffered), newline-terminated; returns bytes written."""
    if isinstance(content, bytes):
        data = content if content.endswith(b"\n") else content + b"\n"
        view = memoryview(data)
        while view:
            view = view[out.write(view) or 0 :]
        return len(data)
    path, offset, length = content
    fd = os.open(path, os.O_RDONLY)
    try:
        copied = 0
        while copied < length:
            sent = os.sendfile(out.fileno(), fd, offset + copied, length - copied)
            if not sent:
                raise OSError(f"{path} ended at {offset + copied} bytes, before {length}")
            copied += sent
        if os.pread(fd, 1, offset + length - 1) == b"\n":
            return length
    finally:
        os.close(fd)
    return length + (out.write(b"\n") or 0)


def _write_batches(
    tmp: Path, name: str, chunks: Iterable[tuple[str, Content]], limit: int
) -> list[StagedBatch]:
    """``chunks`` written in order to files of about ``limit`` bytes."""
    batches: list[StagedBatch] = []
    out: BinaryIO | None = None
    size = 0
    try:
        for source, content in chunks:
            if out is None:
                batches.append(StagedBatch(tmp / f"{name}-{len(batches):05d}.jsonl", []))
                out, size = batches[-1].file.open("wb", buffering=0), 0
            length = _append(out, content)
            batches[-1].parts.append(StagedPart(source, size, length))
            size += length
            if size >= limit:
                out.close()
                out = None
    finally:
        if out is not None:
            out.close()
    return batches


def stage_parts(
    tmp: Path, parts: Iterable[Part], batch_bytes: int | None = None
) -> list[StagedBatch]:
    """The parts' records in NDJSON files of about ``batch_bytes``, in part key order.

    A batch file's line order is the order of its records' sources: of two copies of a unit the
    ingest keeps the first (``INGEST_CHOOSE_SQL``), the one in the part first by name; batched
    in key order, it chooses as one scan of everything would. A run's parts arrive in key order
    and are written once, as they come (a local file copied by the kernel); parts given out of
    order are copied once more, in order, from the files they were first written to (memory
    stays bounded either way).
    """
    limit = INGEST_BATCH_BYTES if batch_bytes is None else batch_bytes
    arrived = _write_batches(tmp, "arrived", _contents(parts), limit)
    index = [(part.source, batch.file, part) for batch in arrived for part in batch.parts]
    if all(a[0] <= b[0] for a, b in itertools.pairwise(index)):
        return arrived
    in_key_order = (
        (source, (file, part.offset, part.length))
        for source, file, part in sorted(index, key=lambda entry: entry[0])
    )
    ordered = _write_batches(tmp, "ordered", in_key_order, limit)
    for batch in arrived:
        batch.file.unlink()
    return ordered


def _write_ndjson(path: Path, rows: Iterable[dict[str, Any]]) -> None:
    with path.open("w", encoding="utf-8") as out:
        out.writelines(json.dumps(row, ensure_ascii=False) + "\n" for row in rows)


@dataclass(frozen=True)
class RunRow:
    """A run's row in ``runs`` as ingest first writes it (status ``ingested``)."""

    run_id: str
    fingerprint: str
    engine: str
    engine_kind: str
    seed: int
    request: dict[str, Any]
    versions: dict[str, Any]
    prompts: dict[str, Any]
    started_at: datetime | None = None
    flow_run_id: str | None = None
    model: str | None = None
    """The model id or path the engine served (``engine`` names the backend and model)."""

    def params(self) -> list[Any]:
        """The parameters of ``RUN_SQL``: its columns in order, then the run id again."""
        from importlib.metadata import version

        return [
            self.run_id,
            datetime.now(UTC),
            self.fingerprint,
            self.engine,
            self.engine_kind,
            self.seed,
            json.dumps(self.request),
            json.dumps(self.versions),
            json.dumps(self.prompts),
            self.started_at,
            self.flow_run_id,
            version("ttscale"),
            self.model,
            self.run_id,
        ]


def write_items(path: Path, questions: Sequence[Question]) -> None:
    _write_ndjson(
        path,
        (
            {
                "ord": i,
                "item_id": q.id,
                "dataset": q.dataset,
                "language": q.language,
                "question": q.question,
                "gold": q.answer,
                "metadata_json": json.dumps(q.metadata),
            }
            for i, q in enumerate(questions)
        ),
    )


def write_bad_rows(path: Path, bad_rows: Sequence[BadRow]) -> None:
    _write_ndjson(
        path,
        (
            {"ord": i, "object": b.object, "line": b.line, "field": b.field, "reason": b.reason}
            for i, b in enumerate(bad_rows)
        ),
    )
