"""Upkeep of the ledger lake: ``ttscale ledger compact``.

Every ingest commits its own Parquet files and snapshot, and DuckLake never deletes a data file
by itself (old snapshots can still be read, "time travel"). A ledger fed by many batches so
collects many small files, the delete files of re-ingests and heals, and every snapshot. This
runs DuckLake's own maintenance functions (those its ``CHECKPOINT`` runs), with one retention
window instead of the catalog-wide options ``CHECKPOINT`` reads:

1. small inlined rows are written out to Parquet, adjacent small files are merged, and files
   with many deleted rows are rewritten (``Ledger.merge_files``; each step commits alone and is
   retried on a conflict with an ingest). The rows, and so every query, are the same after;
2. snapshots older than ``keep`` are expired (time travel to them ends);
3. files replaced more than ``keep`` ago are deleted, and so are files in the data path that no
   snapshot knows (left by a writer killed before its commit) once they are older than ``keep``
   and than a day (``ORPHAN_MIN_AGE``: younger, one may be an ingest's that is about to commit).

A reader that started before step 1 may still be scanning the replaced files, so they are kept
for ``keep`` (default 7 days, as DuckLake advises "a few days"); ``keep=0`` frees the space at
once, for a ledger nobody is using.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb

from ttscale.errors import ConfigError, LedgerError
from ttscale.ledger.lake import LAKE, mask_passwords, parse_ledger, retry_lake
from ttscale.ledger.ledger import Ledger

ORPHAN_MIN_AGE = timedelta(days=1)
"""A file no snapshot knows may also be one an ingest is writing now, to commit in a moment:
orphans are deleted only once this old, whatever ``keep`` says."""
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}
_DURATION = re.compile(r"(\d+)([smhd]?)")


def parse_keep(text: str) -> timedelta:
    """``"7d"``, ``"12h"``, ``"30m"``, ``"45s"`` or ``"0"``; anything else is a ConfigError."""
    match = _DURATION.fullmatch(text.strip())
    if match is None or (match.group(2) == "" and match.group(1) != "0"):
        raise ConfigError(
            f"--keep {text!r}: give a whole number and a unit, s, m, h or d (e.g. 7d, 12h), or 0"
        )
    return timedelta(**{_UNITS[match.group(2) or "s"]: int(match.group(1))})


@dataclass(frozen=True)
class LakeFiles:
    """The data files the lake's current snapshot reads, over all tables."""

    data_files: int
    data_bytes: int
    delete_files: int


@dataclass(frozen=True)
class CompactResult:
    before: LakeFiles
    after: LakeFiles
    snapshots_expired: int
    files_deleted: int
    """Replaced files whose window had passed, and orphans: removed from the data path."""
    files_kept: int
    """Replaced files still inside the window, kept for readers (deleted by a later compact)."""

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def compact_ledger(ledger: str | Path, keep: timedelta) -> CompactResult:
    """Compact the lake named by ``ledger`` (see the module docstring). LedgerError (exit 7)
    where it cannot be opened or written; the merge is retried on write conflicts."""
    spec = parse_ledger(ledger)
    if spec.catalog_file is not None and not spec.catalog_file.is_file():
        raise LedgerError(f"no ledger at {spec.catalog_file}")
    with Ledger(spec.uri) as lake:
        try:
            return _compact(lake, keep)
        except duckdb.Error as exc:  # not a conflict, or still one after the retries
            reason = mask_passwords(" ".join(str(exc).split()))
            raise LedgerError(f"compacting {spec.display} failed: {reason}") from None


def _compact(lake: Ledger, keep: timedelta) -> CompactResult:
    con = lake.con
    before = _files(lake)
    lake.merge_files()

    @retry_lake
    def call(function: str, min_age: timedelta) -> int:
        # The cutoff is taken at each call: with keep=0, what expiring the snapshots has just
        # released is deleted too.
        sql = f"CALL ducklake_{function}('{LAKE}', older_than => ?)"
        return len(con.execute(sql, [datetime.now(UTC) - min_age]).fetchall())

    expired = call("expire_snapshots", keep)
    deleted = call("cleanup_old_files", keep)
    deleted += call("delete_orphaned_files", max(keep, ORPHAN_MIN_AGE))
    row = con.execute(
        f"SELECT count(*) FROM __ducklake_metadata_{LAKE}.ducklake_files_scheduled_for_deletion"
    ).fetchone()
    return CompactResult(before, _files(lake), expired, deleted, int(row[0]) if row else 0)


def _files(lake: Ledger) -> LakeFiles:
    row = lake.con.execute(
        "SELECT coalesce(sum(file_count), 0), coalesce(sum(file_size_bytes), 0), "
        f"coalesce(sum(delete_file_count), 0) FROM ducklake_table_info('{LAKE}')"
    ).fetchone()
    assert row is not None
    return LakeFiles(int(row[0]), int(row[1]), int(row[2]))
