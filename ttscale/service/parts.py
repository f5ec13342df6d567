"""A shard's part objects: finished unit results, checkpointed as they finish, read back to resume."""

from __future__ import annotations

import bisect
import json
import os
import time
from collections.abc import Iterator, Sequence

from ttscale.records import UnitKey, UnitResult
from ttscale.service.layout import ShardLayout
from ttscale.storage import ObjectStore


class PartWriter:
    """Buffers finished unit results and flushes them as create-only part objects."""

    def __init__(
        self, store: ObjectStore, shard: ShardLayout, every_units: int = 32, every_s: float = 15.0
    ) -> None:
        self.store = store
        self.shard = shard
        self.every_units = every_units
        self.every_s = every_s
        self._buffer: list[UnitResult] = []
        self._last_flush = time.monotonic()
        self.parts_written: list[str] = []
        self.unsettled = 0
        """Results added that failed in a way a retry may fix (``UnitResult.settled``)."""

    def add(self, result: UnitResult) -> None:
        self._buffer.append(result)
        self.unsettled += not result.settled
        if (
            len(self._buffer) >= self.every_units
            or time.monotonic() - self._last_flush > self.every_s
        ):
            self.flush()

    def flush(self) -> None:
        if not self._buffer:
            return
        key = self.shard.new_part()
        data = b"".join(result.to_line() for result in self._buffer)
        self.store.write_bytes(key, data, content_type="application/x-ndjson", create_only=True)
        self.parts_written.append(key)
        self._buffer.clear()
        self._last_flush = time.monotonic()


def part_objects(store: ObjectStore, shard: ShardLayout) -> Iterator[tuple[str, bytes]]:
    """Every part object of a shard as ``(key, JSONL bytes)``, in write order, read lazily."""
    for key in store.list(shard.parts):
        yield key, store.read_bytes(key)


def object_content(store: ObjectStore, key: str) -> bytes | str:
    """An object for a reader that takes files or bytes: the path of the file itself where the
    store is a local directory (never read into Python), else its bytes."""
    return store.local_file(key) or store.read_bytes(key)


def part_contents(
    store: ObjectStore, shards: Sequence[ShardLayout]
) -> Iterator[tuple[str, bytes | str]]:
    """Every part object of ``shards`` as ``(key, object_content)``, shard by shard in write
    order, read lazily. The store is listed once for all of them, not once per shard: a big
    run has thousands of shards (one walk of a local store, one paged listing of a bucket)."""
    if not shards:
        return
    # Keys, not paths: the prefix every shard's part keys start with, to the character.
    keys = store.list(os.path.commonprefix([shard.parts for shard in shards]))  # noqa: RUF071
    for shard in shards:
        at = bisect.bisect_left(keys, shard.parts)
        while at < len(keys) and keys[at].startswith(shard.parts):
            yield keys[at], object_content(store, keys[at])
            at += 1


def read_parts(store: ObjectStore, shard: ShardLayout) -> list[tuple[str, list[UnitResult]]]:
    """Every part object of a shard with its results, in write order."""
    return [
        (
            key,
            [UnitResult.from_json(json.loads(line)) for line in data.splitlines() if line.strip()],
        )
        for key, data in part_objects(store, shard)
    ]


def settled_units(store: ObjectStore, shard: ShardLayout) -> set[UnitKey]:
    """The units of a shard that need no new attempt (``UnitResult.settled``)."""
    return {r.key for _, results in read_parts(store, shard) for r in results if r.settled}
