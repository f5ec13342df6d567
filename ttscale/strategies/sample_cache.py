"""A shard's sample cache: each distinct request of a run is generated once, whoever asks.

Units of one item draw the same seeded samples (sample i has the same seed in every unit), so
majority@1..8, best-of-N, ESC... ask for identical requests. The runner owns one cache per
shard; ``StrategyContext.generate`` asks it. A request is keyed by its item, sample index and a
digest of its prompt ids and every sampling setting (seed, max_tokens, stop...), so two requests
share a generation only when the engine would get exactly the same request.

Concurrent askers of one key await one in-flight generation (an asyncio task, so a cancelled
asker does not cancel it for the others). A failed generation is forgotten: the next asker tries
again, as it would have without the cache.

Each generation's tokens are accounted once: the first call record to receive it carries its
``generated_tokens``; every other call served from it carries 0 and ``cached=True``. So a run's
generated tokens are the sum of ``generated_tokens``, while each unit keeps its attributed
tokens (``completion_tokens``) as if it had run alone.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import astuple, dataclass, field, replace

from ttscale.engines.base import Completion, Engine, Generation, SamplingSpec

CacheKey = tuple[str, int, str]
"""(item id, sample index, digest of prompt ids and sampling settings)."""


def request_digest(prompt_ids: Sequence[int], spec: SamplingSpec) -> str:
    """A stable digest of one request (prompt ids and every sampling setting, seed included).

    Stable across processes, so keys written to part objects find their entry on resume.
    """
    payload = json.dumps([list(prompt_ids), list(astuple(spec))], separators=(",", ":"))
    return hashlib.blake2b(payload.encode(), digest_size=16).hexdigest()


@dataclass
class Served:
    """What one call gets from the cache: the generation, its latency and its accounting."""

    generation: Generation
    latency_s: float
    cached: bool
    """Not generated for exactly this request (another call's, or a prefix of a longer one)."""
    generated_tokens: int
    """The tokens this call accounts for as generated (the first receiver of a generation)."""


@dataclass
class _Entry:
    task: asyncio.Future[tuple[Generation, float]]
    claimed: bool = False
    """Whether a call record already accounts for this generation's tokens."""


@dataclass
class SampleCache:
    """One shard's generations by request; ``restore`` refills it from finished part records."""

    entries: dict[CacheKey, _Entry] = field(default_factory=dict)

    def _claim(self, entry: _Entry) -> bool:
        first, entry.claimed = not entry.claimed, True
        return first

    async def _get(
        self, key: CacheKey, run: Callable[[], Awaitable[tuple[Generation, float]]]
    ) -> tuple[_Entry, bool]:
        """The entry of ``key`` once finished, and whether this call started its generation."""
        entry = self.entries.get(key)
        started = entry is None
        if entry is None:
            entry = self.entries[key] = _Entry(asyncio.ensure_future(run()))
        try:
            await asyncio.shield(entry.task)
        except asyncio.CancelledError:
            # The asker was cancelled (the generation goes on for the others), or the generation
            # itself was (the loop is closing): then it must not be served either.
            if entry.task.cancelled() and self.entries.get(key) is entry:
                del self.entries[key]
            raise
        except BaseException:
            # A failed generation must not be served: the next asker generates afresh.
            if self.entries.get(key) is entry:
                del self.entries[key]
            raise
        return entry, started

    async def serve(
        self,
        key: CacheKey,
        run: Callable[[], Awaitable[tuple[Generation, float]]],
    ) -> Served:
        """The generation of ``key``: ``run()`` (generate and time it) unless one exists."""
        entry, started = await self._get(key, run)
        generation, latency = entry.task.result()
        tokens = generation.completions[0].num_tokens if self._claim(entry) else 0
        return Served(generation, latency, not started, tokens)

    async def serve_prefix(
        self,
        key: CacheKey,
        longest_key: CacheKey,
        max_tokens: int,
        run_longest: Callable[[], Awaitable[tuple[Generation, float]]],
        cut: Callable[[Completion, int], Completion | None],
    ) -> Served | None:
        """The first ``max_tokens`` tokens of the longer request ``longest_key``, if ``cut`` can
        tell exactly what a request capped at ``max_tokens`` would have returned; else None.

        The cut is stored under ``key``, so an exact request for it later is served too.
        """
        if key in self.entries:
            return await self.serve(key, run_longest)  # never runs: the entry exists
        entry, _ = await self._get(longest_key, run_longest)
        generation, latency = entry.task.result()
        short = cut(generation.completions[0], max_tokens)
        if short is None:
            return None
        short_generation = replace(generation, completions=(short,))
        if key not in self.entries:
            done: asyncio.Future[tuple[Generation, float]] = (
                asyncio.get_running_loop().create_future()
            )
            done.set_result((short_generation, latency))
            # The cut generated nothing itself: whoever claims the longer request pays for it.
            self.entries[key] = _Entry(done, claimed=True)
        tokens = generation.completions[0].num_tokens if self._claim(entry) else 0
        return Served(short_generation, latency, True, tokens)

    def forget(self, item_id: str) -> None:
        """Drop ``item_id``'s generations once none of its units is left to run: a shard's
        cache then holds the samples of the items in flight, not of the whole shard."""
        for key in [key for key in self.entries if key[0] == item_id]:
            del self.entries[key]

    def restore(self, entries: Iterable[tuple[CacheKey, Generation, float]]) -> int:
        """Add finished generations (key, generation, latency); returns how many were new.

        A resumed shard serves them instead of generating them again. They were generated (and
        accounted) by an earlier attempt, so the calls they serve now account for none.
        """
        loop = asyncio.get_running_loop()
        added = 0
        for key, generation, latency in entries:
            if key in self.entries:
                continue
            done: asyncio.Future[tuple[Generation, float]] = loop.create_future()
            done.set_result((generation, latency))
            self.entries[key] = _Entry(done, claimed=True)
            added += 1
        return added


def prefix_cut(
    engine: Engine, completion: Completion, spec: SamplingSpec, max_tokens: int
) -> Completion | None:
    """What ``spec`` capped at ``max_tokens`` would have returned, given ``completion`` of
    ``spec``, where ``engine`` can tell exactly (an optional ``prefix_completion`` method: the
    scripted and vLLM engines have one); None where it cannot, so the caller generates."""
    method = getattr(engine, "prefix_completion", None)
    if method is None:
        return None
    result: Completion | None = method(completion, spec, max_tokens)
    return result
