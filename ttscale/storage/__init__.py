"""Object storage: one interface over ``s3://bucket/key`` (boto3) and local paths / ``file://``.

S3 endpoint, region and credentials come from the standard AWS chain (``AWS_ENDPOINT_URL``,
``AWS_REGION``, ``AWS_ACCESS_KEY_ID``...). ``TTSCALE_S3_ADDRESSING=path`` (the default whenever an
endpoint URL is set) selects path-style addressing for S3-compatible servers.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import unquote, urlparse

from ttscale.errors import ConfigError
from ttscale.storage.base import (
    MAX_PRESIGN_S,
    EndpointUnreachableError,
    ObjectStore,
    StorageNotFoundError,
    join_key,
    retry_attempts,
    retry_transient,
)
from ttscale.storage.local import LocalStore
from ttscale.storage.s3 import (
    CREDENTIALS_HINT,
    S3Store,
    _s3_error,
    browser_link,
    check_credentials,
    make_s3_client,
    split_s3_uri,
)

__all__ = [
    "CREDENTIALS_HINT",
    "MAX_PRESIGN_S",
    "EndpointUnreachableError",
    "LocalStore",
    "ObjectStore",
    "S3Store",
    "StorageNotFoundError",
    "_s3_error",
    "browser_link",
    "check_credentials",
    "join_key",
    "local_path",
    "make_s3_client",
    "open_object",
    "open_store",
    "retry_attempts",
    "retry_transient",
    "split_s3_uri",
]


def local_path(uri: str) -> Path:
    """The local path of a ``file://`` URI (percent-decoded, as URIs are encoded) or a plain path.

    ``file://dir/x`` (no third slash) is the relative path ``dir/x``, as in ``file://ttscale-out``.
    """
    parsed = urlparse(uri)
    if parsed.scheme == "file":
        return Path(unquote(parsed.netloc + parsed.path))
    return Path(uri)


def open_store(uri: str) -> tuple[ObjectStore, str]:
    """The store holding ``uri`` and the key (or prefix) inside it.

    ``s3://bucket/a/b`` → (S3Store(bucket), "a/b"); ``file:///x/y`` or ``x/y`` → (LocalStore, "").
    A local URI's whole path is the store root, so keys are relative to it.
    """
    if uri.startswith("s3://"):
        bucket, key = split_s3_uri(uri)
        return S3Store(bucket), key
    parsed = urlparse(uri)
    if parsed.scheme == "file":
        return LocalStore(local_path(uri)), ""
    if parsed.scheme and len(parsed.scheme) > 1:
        raise ConfigError(f"unsupported storage scheme {parsed.scheme!r} in {uri!r}")
    return LocalStore(Path(uri)), ""


def open_object(uri: str) -> tuple[ObjectStore, str]:
    """Like ``open_store`` but for one object: a local file's parent is the store root."""
    if uri.startswith("s3://"):
        return open_store(uri)
    path = local_path(uri)
    return LocalStore(path.parent), path.name
