"""How an ingest is staged: the NDJSON DuckDB reads a run's records from, and the SQL that
reads it. ``Ledger`` runs these inside one transaction.

The records are never parsed or re-encoded in Python: each part's JSONL goes whole, in part key
order, into a batch (a local store's object copied by the kernel, ``os.sendfile``), and DuckDB
reads a batch in one ``read_json`` scan (one file, not one per part: DuckDB pays per file) with
insertion order kept, so a record's rowid orders it as its part's key does. Parts are taken in
batches of about ``INGEST_BATCH_BYTES``, so memory stays bounded however big the run. A batch is
a named pipe, fed by a thread as DuckDB reads it (``StagedBatch.opened``), so the parts are not
copied to disk again, and the next batch's files are read ahead (``read_ahead``). Items come
from the shard input objects the same way; bad rows go through one small NDJSON file.
"""

from __future__ import annotations

import contextlib
import fcntl
import itertools
import json
import os
import re
import threading
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, BinaryIO

from ttscale.schemas import BadRow, Question

Part = tuple[str, bytes | str | Path | Sequence[dict[str, Any]]]
"""A shard part ``(source, content)``: its object key and its JSONL bytes, the path of the local
file that holds them (a string or a ``Path``), or parsed records."""
INGEST_BATCH_BYTES = 512 * 2**20
"""How much part JSONL one ingest step reads at a time (DuckDB holds a batch's units in memory).
Each batch pays a fixed part (the anti-join with the ledger's decisions, per-statement setup) and
its scans split by row group, so bigger batches ingest faster: at 10M calls, 512 MiB took 4-5 %
less time than 256 MiB for about 100 MB more peak memory (1 GiB: 7 % and 200 MB)."""

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

# Each statement runs on its own, inside the ingest's transaction, once per batch of parts, after
# INGEST_UNITS_SQL has read the batch (``stage_parts``), in the order ``Ledger._ingest_batch``
# runs them. The records are staged once, nested as written; only the chosen units' row ids are
# copied after that.
# DuckLake has no PRIMARY KEY or UNIQUE: a unit's key is kept unique here, by deleting what this
# ingest replaces and inserting only units the ledger does not hold (an anti-join), in one
# transaction, so running it again changes nothing.
# The staged batch's file replaces $file (``StagedBatch.sql``). Read with insertion order kept,
# so a row's rowid is its line's place in the batch, the order of its part's key (``stage_parts``).
# Created inside the ingest's transaction, ``ingest_units`` is scanned by one thread: DuckDB 1.5
# sizes a table scan's threads by the table's committed rows, and it has none. Measured ways
# around it cost more than they save: a table committed before the transaction (or an attached
# in-memory database per batch) scans in parallel, but DuckDB keeps every batch loaded into it
# until the commit (deleting or dropping it inside the transaction frees nothing), so the whole
# run's units would be held or spilled; a batch staged in a DuckDB file scans in parallel and is
# freed, but writing it costs more (3.7 s against 2.1 s per 2M calls) than the scans save (1 s).
INGEST_UNITS_SQL = f"""CREATE OR REPLACE TEMP TABLE ingest_units AS
    SELECT * FROM read_json($file, format='newline_delimited', records=true,
                            columns={_columns(_UNIT_FIELDS)})"""
# Whether any unit the ledger holds of the batch's runs is errored, so that the batch may heal
# it: almost never, and then INGEST_HEAL_SQL (a join of every staged key) is not run at all.
INGEST_MAY_HEAL_SQL = """SELECT count(*) FROM item_decisions
    WHERE stop_reason = 'error' AND run_id IN (SELECT DISTINCT run_id FROM ingest_units)"""
INGEST_HEAL_SQL: tuple[str, ...] = (
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
)
# One record per unit, and none for a unit already in the ledger. A unit may have several:
# a retry after an errored attempt (the success wins) or a zombie worker's second copy (the
# part first by name wins).
INGEST_CHOOSE_SQL = f"""CREATE OR REPLACE TEMP TABLE ingest_chosen AS
    SELECT arg_min(u.rowid, (u.error IS NOT NULL, u.rowid)) AS uid FROM ingest_units u
    WHERE NOT EXISTS (SELECT 1 FROM item_decisions d WHERE {_KEY_MATCH})
    GROUP BY {_KEY_COLS}"""
# One scan of the batch's calls for two sets of counts, after INGEST_CHOOSE_SQL:
# - what the staged part lines say the engine generated, every line counted (every attempt,
#   superseded ones included, which the ledger's call rows drop): calls, calls served from the
#   sample cache, and tokens generated (``records.generated_tokens``: older calls count all of
#   theirs), so the parts are parsed once, by DuckDB;
# - what the batch is about to add: units, calls, and calls that break completion = thinking +
#   answer. DuckLake has no CHECK constraints: a count above 0 fails the ingest before anything
#   is inserted.
GENERATION_TOTAL_NAMES = ("calls", "calls_cached", "tokens_generated")
INGEST_COUNTS_SQL = """SELECT
    coalesce(sum(len(calls)), 0),
    coalesce(sum(len(list_filter(calls, lambda c: coalesce(c.cached, false)))), 0),
    coalesce(sum(list_sum(list_transform(
        calls, lambda c: coalesce(c.generated_tokens, c.completion_tokens)))), 0),
    count(chosen.uid),
    coalesce(sum(len(calls)) FILTER (WHERE chosen.uid IS NOT NULL), 0),
    coalesce(sum(len(list_filter(
        calls, lambda c: c.completion_tokens <> c.thinking_tokens + c.answer_tokens)))
        FILTER (WHERE chosen.uid IS NOT NULL), 0)
FROM ingest_units u LEFT JOIN ingest_chosen chosen ON chosen.uid = u.rowid"""
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
# Batched, a unit an earlier batch added errored may be healed by a later one: it is then added
# once, not twice. ``ingest_added`` holds the errored units this ingest added (only those can be
# healed); REHEALED counts what a batch is about to replace of them (before the deletes),
# ADDED_TRACK records the batch's errored additions.
INGEST_ADDED_SQL = f"""CREATE OR REPLACE TEMP TABLE ingest_added AS
    SELECT {_KEY_COLS} FROM item_decisions WHERE false"""
INGEST_REHEALED_SQL = f"""SELECT count(*), coalesce(sum(d.calls), 0) FROM ingest_healed h
    JOIN ingest_added a USING ({_KEY_COLS}) JOIN item_decisions d USING ({_KEY_COLS})"""
INGEST_ADDED_TRACK_SQL = f"""INSERT INTO ingest_added SELECT {_KEY_COLS} FROM ingest_units
    WHERE stop_reason = 'error' AND rowid IN (SELECT uid FROM ingest_chosen)"""
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


Range = tuple[str | Path, int, int]
"""A part's records while staged: a byte range of a file ``(file, offset, length)``."""


@dataclass(frozen=True)
class StagedFile:
    """One NDJSON file DuckDB reads in one ``read_json`` scan: whole parts, in key order."""

    file: Path
    parts: list[tuple[str, Range]]
    """The parts in it, in order: each one's key and where its records come from."""

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
        for source, (path, offset, length) in self.parts:
            with open(path, "rb") as records:
                records.seek(offset)
                data = records.read(length)
            lines = data.count(b"\n") + (not data.endswith(b"\n"))  # as ``_append`` ends it
            if line < first + lines:
                return message.replace(match[0], f'"{source}", in line {line - first + 1}')
            first += lines
        return message


@dataclass(frozen=True)
class StagedBatch:
    """The parts one ``read_json`` scan reads, in key order: where each one's records are.

    ``opened`` gives DuckDB a named pipe that a thread writes the parts into as DuckDB reads
    it, so a run's records are never copied to disk: written to a file first, the copy cost
    more than DuckDB's parse (the page cache's writeback, under the lake's own writes). Opened
    again (a retried transaction), it is fed again from the same ranges.
    """

    file: Path
    """The pipe's path while open; or, when ``in_place``, the file it reads as it is."""
    parts: list[tuple[str, Range]]
    in_place: bool = False
    """The batch is one whole spill file, read where it is (parts given as bytes, in order)."""

    @contextlib.contextmanager
    def opened(self) -> Iterator[StagedFile]:
        """The batch as a file for one statement to read whole, inside the ``with``."""
        if self.in_place:
            yield StagedFile(self.file, self.parts)
            return
        os.mkfifo(self.file)
        feeder = _Feeder(self.file, [content for _, content in self.parts])
        try:
            try:
                yield StagedFile(self.file, self.parts)
            except BaseException:
                feeder.abandon()
                raise
            feeder.finish()
        finally:
            self.file.unlink(missing_ok=True)


def read_ahead(batches: Sequence[StagedBatch]) -> Iterator[StagedBatch]:
    """``batches`` in order; as each is handed out, the next one's part files are asked of the
    disk (``posix_fadvise``: the kernel reads them in the background, many at once, while the
    current batch is parsed), so a run whose parts left the page cache is not read one small
    file at a time."""
    if batches:
        _ask_for(batches[0])
    for index, batch in enumerate(batches):
        if index + 1 < len(batches):
            _ask_for(batches[index + 1])
        yield batch


def _ask_for(batch: StagedBatch) -> None:
    if not hasattr(os, "posix_fadvise"):  # not on macOS: there, the feeder just reads
        return

    def ask() -> None:
        for _, (path, offset, length) in batch.parts:
            with contextlib.suppress(OSError):  # a hint only: the feeder reads them anyway
                fd = os.open(path, os.O_RDONLY)
                try:
                    os.posix_fadvise(fd, offset, length, os.POSIX_FADV_WILLNEED)
                finally:
                    os.close(fd)

    threading.Thread(target=ask, name="ttscale-read-ahead", daemon=True).start()


class _Feeder(threading.Thread):
    """Writes ranges into a named pipe, in order, for its one reader (DuckDB)."""

    def __init__(self, pipe: Path, ranges: list[Range]) -> None:
        super().__init__(name=f"ttscale-staging-{pipe.name}", daemon=True)
        self.pipe, self.ranges = pipe, ranges
        self.error: BaseException | None = None
        self.start()

    def run(self) -> None:
        try:
            with self.pipe.open("wb", buffering=0) as out:
                with contextlib.suppress(OSError):  # a bigger pipe: fewer switches to the reader
                    fcntl.fcntl(out.fileno(), fcntl.F_SETPIPE_SZ, 2**20)
                for content in self.ranges:
                    _append(out, content)
        except BaseException as exc:  # the reader sees the pipe end early: finish() raises this
            self.error = exc

    def finish(self) -> None:
        """After the reader's statement: the feeder is done, and the reader read it all; its
        error, if any, raised (a reader that saw the pipe end early read only some parts)."""
        unread = self._drain()
        if self.error is not None:
            raise OSError(f"staging the parts failed: {self.error}") from self.error
        if unread:
            raise OSError(f"the reader of {self.pipe.name} left {unread} bytes of parts unread")

    def abandon(self) -> None:
        """After the reader failed: the feeder let go of, whatever it was doing."""
        self._drain()

    def _drain(self) -> int:
        """Read what is left of the pipe until the feeder ends, so it is never left waiting (its
        open waits for a reader, its writes for room, whether or not the reader let go of the
        pipe); returns the bytes read."""
        drained = 0
        reader = os.open(self.pipe, os.O_RDONLY | os.O_NONBLOCK)
        try:
            while self.is_alive():
                try:
                    chunk = os.read(reader, 2**20)
                except BlockingIOError:
                    chunk = b""
                drained += len(chunk)
                if not chunk:
                    self.join(0.01)  # empty for now: the feeder is opening or copying
        finally:
            os.close(reader)
        self.join()
        return drained


def _ranges(
    tmp: Path, parts: Iterable[Part], limit: int, spills: set[Path]
) -> Iterator[tuple[str, Range]]:
    """Each part with a record, as ``(key, byte range)``: a local file is a range of itself
    (copied by the kernel later, never read into Python); bytes and records (encoded once
    each) are appended, newline-terminated, to spill files of about ``limit`` bytes, which are
    added to ``spills``."""
    spill: BinaryIO | None = None
    spill_path, size = tmp, 0
    try:
        for source, content in parts:
            if isinstance(content, str | Path):
                length = os.stat(content).st_size
                if length:
                    yield source, (content, 0, length)
                continue
            if not isinstance(content, bytes):
                content = b"".join(
                    json.dumps(r, ensure_ascii=False).encode() + b"\n" for r in content
                )
            if not content.strip():
                continue
            if spill is None:
                spill_path = tmp / f"spill-{len(spills):05d}.jsonl"
                spills.add(spill_path)
                spill, size = spill_path.open("wb", buffering=0), 0
            length = _append(spill, content)
            yield source, (spill_path, size, length)
            size += length
            if size >= limit:
                spill.close()
                spill = None
    finally:
        if spill is not None:
            spill.close()


def _append(out: BinaryIO, content: bytes | Range) -> int:
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


def stage_parts(
    tmp: Path, parts: Iterable[Part], batch_bytes: int | None = None
) -> list[StagedBatch]:
    """The parts' records in batches of about ``batch_bytes``, in part key order.

    A batch's line order is the order of its records' sources: of two copies of a unit the
    ingest keeps the first (``INGEST_CHOOSE_SQL``), the one in the part first by name; batched
    in key order, it chooses as one scan of everything would. Parts are read once, as they come:
    a local file stays where it is, bytes are spilled to files in ``tmp``; a batch is fed from
    those ranges only as it is read (``StagedBatch.opened``), so memory stays bounded and parts
    given out of order cost nothing more. Spilled parts that arrived in key order
    are read in place, the spill file being the batch.
    """
    limit = INGEST_BATCH_BYTES if batch_bytes is None else batch_bytes
    spills: set[Path] = set()
    index = list(_ranges(tmp, parts, limit, spills))
    in_order = all(a[0] <= b[0] for a, b in itertools.pairwise(index))
    if not in_order:
        index.sort(key=lambda entry: entry[0])
    groups: list[list[tuple[str, Range]]] = [[]]
    size = 0
    for entry in index:
        groups[-1].append(entry)
        size += entry[1][2]
        if size >= limit:
            groups.append([])
            size = 0
    batches: list[StagedBatch] = []
    for group in filter(None, groups):
        first_file = group[0][1][0]
        whole = (
            in_order
            and first_file in spills
            and all(file == first_file for _, (file, _, _) in group)
            and group[0][1][1] == 0
            and sum(length for _, (_, _, length) in group) == os.stat(first_file).st_size
        )
        name = Path(first_file) if whole else tmp / f"batch-{len(batches):05d}.jsonl"
        batches.append(StagedBatch(name, group, in_place=whole))
    return batches


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
