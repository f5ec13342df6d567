"""The one failure policy: which statuses are retryable, and that attempts and re-raising hold."""

from __future__ import annotations

import asyncio

import pytest

from ttscale.errors import ConfigError, EngineRejectedError, EngineRequestError
from ttscale.retry import POLICIES, async_retrying, is_retryable_status, retrying


@pytest.mark.parametrize("status", [429, 500, 502, 503, 504, 599])
def test_throttling_and_server_errors_are_retryable(status: int) -> None:
    assert is_retryable_status(status)


@pytest.mark.parametrize("status", [200, 204, 301, 400, 401, 403, 404, 409, 413, 422, 428, 600])
def test_other_statuses_are_not(status: int) -> None:
    assert not is_retryable_status(status)


def test_every_named_policy_exists() -> None:
    assert set(POLICIES) == {"engine", "scorer", "storage", "ledger", "step"}
    assert POLICIES["engine"].attempts == 4
    assert POLICIES["scorer"].attempts == 4
    assert POLICIES["storage"].attempts == 6


def _no_wait(retryer: object) -> None:
    retryer.wait = lambda retry_state: 0  # type: ignore[attr-defined]


def test_retrying_stops_after_the_policy_attempts_and_reraises_the_last_error() -> None:
    calls = []

    def flaky() -> None:
        calls.append(1)
        raise EngineRequestError(f"try {len(calls)}")

    retryer = retrying("engine", (EngineRequestError,))
    _no_wait(retryer)
    with pytest.raises(EngineRequestError, match="try 4"):
        retryer(flaky)
    assert len(calls) == 4


def test_only_the_named_types_are_retried() -> None:
    calls = []

    def rejected() -> None:
        calls.append(1)
        raise EngineRejectedError("400")

    retryer = retrying("engine", (EngineRequestError,))
    _no_wait(retryer)
    with pytest.raises(EngineRejectedError):
        retryer(rejected)
    assert len(calls) == 1


def test_async_retrying_returns_once_a_try_succeeds() -> None:
    calls = []

    async def run() -> str:
        retryer = async_retrying("scorer", (EngineRequestError,))
        _no_wait(retryer)
        async for attempt in retryer:
            with attempt:
                calls.append(1)
                if len(calls) < 3:
                    raise EngineRequestError("503")
                return "ok"
        raise AssertionError("unreachable")

    assert asyncio.run(run()) == "ok"
    assert len(calls) == 3


def test_storage_attempts_follow_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []

    def flaky() -> None:
        calls.append(1)
        raise EngineRequestError("x")

    monkeypatch.setenv("TTSCALE_RETRY_ATTEMPTS", "2")
    retryer = retrying("storage", (EngineRequestError,))
    _no_wait(retryer)
    with pytest.raises(EngineRequestError):
        retryer(flaky)
    assert len(calls) == 2
    monkeypatch.setenv("TTSCALE_RETRY_ATTEMPTS", "0")
    with pytest.raises(ConfigError):
        retrying("storage", (EngineRequestError,))(flaky)


def test_an_unknown_policy_names_the_known_ones() -> None:
    with pytest.raises(KeyError, match="engine"):
        retrying("nope", (EngineRequestError,))


def test_a_step_waits_its_fixed_delays_with_jitter_then_reraises(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The "step" policy (a batch step, and the flow's task retries) waits about 2, 10, 30 s."""
    slept: list[float] = []
    calls = []

    def failing_step() -> None:
        calls.append(1)
        raise EngineRequestError(f"try {len(calls)}")

    retryer = retrying("step", (EngineRequestError,))
    retryer.sleep = slept.append  # type: ignore[method-assign]
    with pytest.raises(EngineRequestError, match="try 4"):
        retryer(failing_step)
    assert len(calls) == 4
    jitter = POLICIES["step"].jitter
    assert len(slept) == 3
    for wait, delay in zip(slept, (2, 10, 30), strict=True):
        assert delay * (1 - jitter) <= wait <= delay * (1 + jitter)
