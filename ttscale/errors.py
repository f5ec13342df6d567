"""One error hierarchy under one root.

Recoverable errors are worth retrying (bounded, jittered, with tenacity); fatal ones are not.
Only ``RecoverableError`` subclasses are ever retried.
"""

from __future__ import annotations


class TTScaleError(Exception):
    """Root of every error ttscale raises on purpose."""

    exit_code = 1


class RecoverableError(TTScaleError):
    """A transient failure: the same call may succeed if retried."""


class FatalError(TTScaleError):
    """A failure that retrying cannot fix."""


class TransientStorageError(RecoverableError):
    """Object storage timed out, throttled or answered 5xx."""


class EngineRequestError(RecoverableError):
    """One generation request failed, but the engine is still alive."""


class EngineUnreachableError(EngineRequestError):
    """The engine could not be reached at all (connection refused, DNS, connect timeout).

    Retried like any request error; when the bounded retries run out the engine counts as dead.
    """


class ShardRunCrashedError(RecoverableError):
    """A shard's flow run crashed or was cancelled (a lost worker); running it again resumes it."""


class ConfigError(FatalError):
    """A request or setting is invalid."""

    exit_code = 2


class InputError(FatalError):
    """An input object cannot be read at all (not a single bad row: those are reported, not raised)."""

    exit_code = 3


class StorageError(FatalError):
    """Object storage refused the call for good (missing object, denied, bad bucket)."""

    exit_code = 4


class ObjectExistsError(StorageError):
    """A create-only write found the object already there."""


class EngineDeadError(FatalError):
    """The engine cannot serve any more requests."""

    exit_code = 5


class EngineRejectedError(FatalError):
    """The engine refused one request for good (HTTP 4xx other than 429): a retry cannot fix it.

    It fails that unit alone, recorded as not retryable; the engine serves the others.
    """

    exit_code = 5


class UnitsFailedError(FatalError):
    """More units errored than the request's ``fail_on_error`` allows; a re-run retries them."""

    exit_code = 5


class ModelNotPreparedError(FatalError):
    """The embedded model has not been converted yet (run ``ttscale models prepare``)."""

    exit_code = 6


class LedgerError(FatalError):
    """The DuckDB ledger cannot be opened or migrated."""

    exit_code = 7


class SqlRefusedError(ConfigError):
    """``ttscale sql`` refused a statement.

    It was not one read-only statement, or it reached past the ledger: a file, the network, an
    extension, a setting.
    """
