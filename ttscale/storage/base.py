"""What every object store shares: the protocol, key joining, and bounded jittered retries.

Retries follow the "storage" policy of ``ttscale.retry`` (``TTSCALE_RETRY_ATTEMPTS`` tries,
default 6).
"""

import functools
from collections.abc import Callable
from typing import Any, Protocol, TypeVar

from ttscale.errors import RecoverableError, StorageError, TransientStorageError
from ttscale.retry import POLICIES, retrying

F = TypeVar("F", bound=Callable[..., Any])

MAX_PRESIGN_S = 7 * 24 * 3600
"""The longest a SigV4 presigned URL may live (7 days)."""


def retry_attempts() -> int:
    """``TTSCALE_RETRY_ATTEMPTS`` (default 6), read at each call so it can be changed at runtime."""
    return POLICIES["storage"].max_attempts()


def retry_transient(fn: F) -> F:
    """``fn`` with bounded, jittered retries of recoverable errors only (the "storage" policy)."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        return retrying("storage", (RecoverableError,))(fn, *args, **kwargs)

    return wrapper  # type: ignore[return-value]


class StorageNotFoundError(StorageError):
    """The bucket, or the object, does not exist (an input loader turns this into InputError)."""


class EndpointUnreachableError(TransientStorageError):
    """The S3 endpoint could not be connected to; fatal (StorageError) once retries run out."""


def _retry_s3(fn: F) -> F:
    """``retry_transient``, then an endpoint still unreachable becomes a fatal StorageError."""
    retried = retry_transient(fn)

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return retried(*args, **kwargs)
        except EndpointUnreachableError as exc:
            raise StorageError(f"{exc} (gave up after {retry_attempts()} attempts)") from None

    return wrapper  # type: ignore[return-value]


class ObjectStore(Protocol):
    """Keys are relative to the store's root (a bucket or a directory) and use '/'."""

    def read_bytes(self, key: str) -> bytes: ...

    def write_bytes(
        self, key: str, data: bytes, *, content_type: str | None = None, create_only: bool = False
    ) -> None:
        """Write ``data``; with ``create_only`` raise ``ObjectExistsError`` if the key exists."""
        ...

    def list(self, prefix: str) -> list[str]:
        """Keys under ``prefix``, sorted."""
        ...

    def exists(self, key: str) -> bool: ...

    def local_file(self, key: str) -> str | None:
        """The path of the file that holds ``key``'s bytes when the store is a local directory,
        so a reader needs no copy in Python (the ingest has the kernel copy it); None for a
        remote store or a missing object. A string: a run's ingest asks for tens of thousands,
        and a ``Path`` costs more to make than the copy it saves."""
        ...

    def uri(self, key: str) -> str:
        """The full URI of ``key`` (never with credentials)."""
        ...


def join_key(*parts: str) -> str:
    return "/".join(p.strip("/") for p in parts if p and p.strip("/"))
