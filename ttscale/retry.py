"""One failure policy: which failures are retried, how often, and how long to wait between tries.

Every retry in the service goes through ``retrying`` / ``async_retrying`` with a named policy
from ``POLICIES``, so attempts and waits are set in one table. A policy retries only the
exception types its caller names (always ``RecoverableError`` subclasses: see ``errors.py``),
waits a jittered exponential time between tries, and re-raises the last error unchanged when
the attempts run out, so callers see the real failure rather than tenacity's ``RetryError``.
"""

from __future__ import annotations

import logging
import os
import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from tenacity import (
    AsyncRetrying,
    Retrying,
    retry_if_exception,
    retry_if_exception_type,
    stop_after_attempt,
    wait_random_exponential,
)

from ttscale.errors import ConfigError

log = logging.getLogger("ttscale.retry")


@dataclass(frozen=True)
class Policy:
    """How one kind of call is retried."""

    attempts: int
    """Tries in all, the first included (1 = no retry)."""
    wait_multiplier_s: float = 0.05
    """Scale of the jittered exponential wait: a random wait up to ``multiplier * 2**try``."""
    wait_max_s: float = 2.0
    """Cap on one wait."""
    delays_s: tuple[float, ...] = ()
    """Fixed waits before each retry instead of the exponential ones (a whole batch step, which
    Prefect also retries with these values: ``flows/batch.py``). ``attempts`` is one more."""
    jitter: float = 0.5
    """With ``delays_s``: each wait is drawn from ``delay × (1 ± jitter)``, so retries of
    parallel runs do not line up."""
    attempts_env: str | None = None
    """An environment variable that overrides ``attempts``, read at every try (so tests and
    operators can change it at runtime)."""

    def max_attempts(self) -> int:
        """``attempts``, or the value of ``attempts_env`` when it is set."""
        if self.attempts_env is None:
            return self.attempts
        raw = os.environ.get(self.attempts_env)
        if raw is None:
            return self.attempts
        try:
            value = int(raw)
        except ValueError:
            raise ConfigError(f"{self.attempts_env} must be an integer, got {raw!r}") from None
        if value < 1:
            raise ConfigError(f"{self.attempts_env} must be at least 1, got {value}")
        return value


POLICIES: dict[str, Policy] = {
    # A generation request: vLLM or an OpenAI-compatible server (StrategyContext.generate).
    "engine": Policy(attempts=4),
    # A reward-model HTTP call (strategies/scorers.py).
    "scorer": Policy(attempts=4),
    # An object-store call (storage/s3.py). More tries: S3 throttling (503 SlowDown) comes in bursts.
    "storage": Policy(attempts=6, attempts_env="TTSCALE_RETRY_ATTEMPTS"),
    # A whole ledger transaction or read (ttscale/ledger/lake.py ``retry_lake``): a DuckLake write
    # conflict or a busy SQLite catalog clears once the other writer commits, so many short tries.
    "ledger": Policy(attempts=12, attempts_env="TTSCALE_LEDGER_RETRY_ATTEMPTS"),
    # A whole batch step (plan, shard, ingest, report) in ttscale.service and, as task retries,
    # in flows/batch.py: long waits, because what failed is usually a store or engine outage.
    "step": Policy(attempts=4, delays_s=(2, 10, 30)),
}


def policy_named(name: str) -> Policy:
    """The policy called ``name``; a ``KeyError`` names the known ones."""
    try:
        return POLICIES[name]
    except KeyError:
        raise KeyError(f"no retry policy {name!r}; known: {sorted(POLICIES)}") from None


def is_retryable_status(status: int) -> bool:
    """True for an HTTP status a retry may fix: 429 (throttled) and 5xx. Never any other 4xx."""
    return status == 429 or 500 <= status <= 599


RetryOn = tuple[type[BaseException], ...] | Callable[[BaseException], bool]
"""What a policy retries: exception types, or a predicate over the exception."""


def _arguments(name: str, retry_on: RetryOn) -> dict[str, Any]:
    chosen = policy_named(name)

    def stop(retry_state: Any) -> bool:
        # Read at every try, so an attempts_env change applies to the next call, not only new ones.
        return bool(stop_after_attempt(chosen.max_attempts())(retry_state))

    def fixed_wait(retry_state: Any) -> float:
        delays = chosen.delays_s
        delay = delays[min(retry_state.attempt_number, len(delays)) - 1]
        return delay * random.uniform(1 - chosen.jitter, 1 + chosen.jitter)

    def announce(retry_state: Any) -> None:
        error = retry_state.outcome.exception() if retry_state.outcome else None
        wait = retry_state.next_action.sleep if retry_state.next_action else 0.0
        log.warning(
            "%s failed (%s); retry %d in %.1f s", name, error, retry_state.attempt_number, wait
        )

    return {
        "retry": retry_if_exception_type(retry_on)
        if isinstance(retry_on, tuple)
        else retry_if_exception(retry_on),
        "stop": stop,
        "wait": fixed_wait
        if chosen.delays_s
        else wait_random_exponential(multiplier=chosen.wait_multiplier_s, max=chosen.wait_max_s),
        "reraise": True,
        "before_sleep": announce if chosen.delays_s else None,
    }


def async_retrying(policy: str, retry_on: RetryOn) -> AsyncRetrying:
    """An ``AsyncRetrying`` for ``async for attempt in …: with attempt: await …``."""
    return AsyncRetrying(**_arguments(policy, retry_on))


def retrying(policy: str, retry_on: RetryOn, **extra: Any) -> Retrying:
    """A ``Retrying``: iterate it like ``async_retrying``, or call it as ``retrying(…)(fn, *args)``."""
    return Retrying(**(_arguments(policy, retry_on) | extra))
