"""Load and validate input batches: JSONL and Parquet objects of questions.

A malformed row is reported as a ``BadRow`` (object, line, field, reason) and skipped; every valid
row is still returned. Only an object that cannot be read at all raises, and so does an input with
no valid question at all (``load_batch(..., require_questions=True)``, the default).

JSONL is read as it comes in the wild: a UTF-8 byte order mark and CRLF line ends are accepted; a
line that is not valid UTF-8 is a bad row (never decoded with replacement characters).
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlparse

from pydantic import ValidationError

from ttscale.errors import InputError
from ttscale.schemas import BadRow, Question
from ttscale.storage import ObjectStore, StorageNotFoundError, local_path, open_store

INPUT_SUFFIXES = (".jsonl", ".json", ".parquet")


@dataclass
class LoadedBatch:
    """Valid questions in input order, and every row that was not usable."""

    questions: list[Question] = field(default_factory=list)
    bad_rows: list[BadRow] = field(default_factory=list)
    objects: list[str] = field(default_factory=list)


_BOM = "\ufeff"


def _rows_jsonl(data: bytes, uri: str) -> Iterator[tuple[int, dict[str, Any] | BadRow]]:
    # Split bytes on b"\n" only: one bad byte spoils its own line, not the object, and line
    # numbers match what `sed -n Np` shows (str.splitlines also splits on \x1c, U+2028...).
    for line_no, raw_bytes in enumerate(data.split(b"\n"), start=1):
        try:
            raw = raw_bytes.removesuffix(b"\r").decode("utf-8")
        except UnicodeDecodeError as exc:
            yield (
                line_no,
                BadRow(
                    object=uri,
                    line=line_no,
                    reason=f"not valid UTF-8 ({exc.reason}: byte 0x{raw_bytes[exc.start]:02x} at "
                    f"column {exc.start + 1}); save the file as UTF-8",
                ),
            )
            continue
        # A byte order mark starts the object (or a line, where files were concatenated).
        raw = raw.removeprefix(_BOM)
        if not raw.strip():
            continue
        try:
            row = json.loads(raw)
        except json.JSONDecodeError as exc:
            yield line_no, BadRow(object=uri, line=line_no, reason=f"invalid JSON: {exc.msg}")
            continue
        if not isinstance(row, dict):
            yield line_no, BadRow(object=uri, line=line_no, reason="row is not a JSON object")
            continue
        yield line_no, row


def _rows_parquet(data: bytes, uri: str) -> Iterator[tuple[int, dict[str, Any] | BadRow]]:
    import duckdb

    # DuckDB cannot read s3:// offline (httpfs needs the network): stage the bytes locally.
    with tempfile.NamedTemporaryFile(suffix=".parquet") as tmp:
        tmp.write(data)
        tmp.flush()
        try:
            con = duckdb.connect()
            cursor = con.execute("SELECT * FROM read_parquet(?)", [tmp.name])
            names = [d[0] for d in cursor.description]
            rows = cursor.fetchall()
        except duckdb.Error as exc:
            raise InputError(f"{uri}: not a readable Parquet file ({exc})") from None
    for row_no, values in enumerate(rows, start=1):
        yield row_no, {k: v for k, v in zip(names, values, strict=True) if v is not None}


def _row_error(uri: str, line: int, exc: ValidationError) -> BadRow:
    first = exc.errors()[0]
    loc = ".".join(str(p) for p in first["loc"]) or None
    reasons = "; ".join(
        f"{'.'.join(str(p) for p in e['loc']) or 'row'}: {e['msg']}" for e in exc.errors()
    )
    return BadRow(object=uri, line=line, field=loc, reason=reasons)


def parse_object(
    data: bytes, uri: str, batch: LoadedBatch, seen: dict[str, tuple[str, int]]
) -> None:
    """Validate one object's rows into ``batch``; ``seen`` maps ids to where they first occurred."""
    reader = _rows_parquet if uri.endswith(".parquet") else _rows_jsonl
    for line, row in reader(data, uri):
        if isinstance(row, BadRow):
            batch.bad_rows.append(row)
            continue
        try:
            question = Question.model_validate(row)
        except ValidationError as exc:
            batch.bad_rows.append(_row_error(uri, line, exc))
            continue
        if question.id in seen:
            first_uri, first_line = seen[question.id]
            batch.bad_rows.append(
                BadRow(
                    object=uri,
                    line=line,
                    field="id",
                    reason=f"duplicate id {question.id!r} (first at {first_uri} line {first_line})",
                )
            )
            continue
        seen[question.id] = (uri, line)
        batch.questions.append(question)


def _input_keys(store: ObjectStore, key: str, uri: str) -> list[str]:
    if key.endswith(INPUT_SUFFIXES) and store.exists(key):
        return [key]
    keys = [k for k in store.list(key) if k.endswith(INPUT_SUFFIXES)]
    if not keys:
        raise InputError(
            f"no .jsonl/.json/.parquet objects at {uri} (no such object or prefix, or no file "
            "with one of these suffixes)"
        )
    return keys


def ensure_questions(batch: LoadedBatch, input_uri: str) -> None:
    """Raise InputError if ``batch`` holds no valid question (say how many rows were bad, and why).

    The batch planner calls this through ``load_batch``; a preflight can call it on a batch it
    loaded with ``require_questions=False``.
    """
    if batch.questions:
        return
    if not batch.bad_rows:
        objects = len(batch.objects)
        raise InputError(
            f"no valid question in {input_uri}: "
            f"{objects} object{'s' if objects != 1 else ''} with no rows"
        )
    first = batch.bad_rows[0]
    where = f"{first.object} line {first.line}" + (f" field {first.field}" if first.field else "")
    count = len(batch.bad_rows)
    reason = " ".join(first.reason.split())
    raise InputError(
        f"no valid question in {input_uri}: {count} bad row{'s' if count != 1 else ''}, "
        f"the first at {where}: {reason}"
    )


@dataclass(frozen=True)
class InputLocation:
    """An input URI opened once: the store holding it and the key (an object or a prefix)."""

    uri: str
    store: ObjectStore
    key: str


def open_input(input_uri: str) -> InputLocation:
    """Open the store of ``input_uri``; nothing is read (``load_input`` does that)."""
    if urlparse(input_uri).scheme == "s3":
        store, key = open_store(input_uri)
        return InputLocation(input_uri, store, key)
    # Local: the store root is the file's directory (or the directory itself).
    local = local_path(input_uri)
    if local.is_file():
        return InputLocation(input_uri, open_store(str(local.parent))[0], local.name)
    return InputLocation(input_uri, open_store(str(local))[0], "")


def load_batch(input_uri: str, *, require_questions: bool = True) -> LoadedBatch:
    """Load every question object at ``input_uri`` (one object, a directory or an S3 prefix).

    Raises InputError when the input does not exist (a missing file, bucket or prefix), cannot be
    read as JSONL/Parquet, or (with ``require_questions``) holds no valid question. Credential,
    endpoint and permission failures stay StorageError.
    """
    return load_input(open_input(input_uri), require_questions=require_questions)


def load_input(source: InputLocation, *, require_questions: bool = True) -> LoadedBatch:
    """``load_batch`` of an input opened with ``open_input``."""
    input_uri, store, key = source.uri, source.store, source.key
    if urlparse(input_uri).scheme != "s3" and not local_path(input_uri).exists():
        raise InputError(f"no such input: {input_uri}")
    batch = LoadedBatch()
    seen: dict[str, tuple[str, int]] = {}
    try:
        object_keys = _input_keys(store, key, input_uri)
    except StorageNotFoundError as exc:  # NoSuchBucket: the input is not there
        raise InputError(f"no such input {input_uri}: {exc}") from None
    for object_key in object_keys:
        uri = store.uri(object_key)
        try:
            data = store.read_bytes(object_key)
        except StorageNotFoundError as exc:  # deleted between list and read
            raise InputError(str(exc)) from None
        batch.objects.append(uri)
        parse_object(data, uri, batch, seen)
    if require_questions:
        ensure_questions(batch, input_uri)
    return batch
