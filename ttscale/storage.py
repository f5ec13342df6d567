"""Object storage: one interface over ``s3://bucket/key`` (boto3) and local paths / ``file://``.

S3 endpoint, region and credentials come from the standard AWS chain (``AWS_ENDPOINT_URL``,
``AWS_REGION``, ``AWS_ACCESS_KEY_ID``...). ``TTSCALE_S3_ADDRESSING=path`` (the default whenever an
endpoint URL is set) selects path-style addressing for S3-compatible servers.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlparse

from tenacity import (
    retry,
    retry_if_exception_type,
    stop_after_attempt,
    wait_random_exponential,
)

from ttscale.errors import (
    ConfigError,
    ObjectExistsError,
    RecoverableError,
    StorageError,
    TransientStorageError,
)

retry_transient = retry(
    retry=retry_if_exception_type(RecoverableError),
    stop=stop_after_attempt(int(os.environ.get("TTSCALE_RETRY_ATTEMPTS", "6"))),
    wait=wait_random_exponential(multiplier=0.05, max=2.0),
    reraise=True,
)
"""Bounded, jittered retries of recoverable errors only."""


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

    def uri(self, key: str) -> str:
        """The full URI of ``key`` (never with credentials)."""
        ...


def join_key(*parts: str) -> str:
    return "/".join(p.strip("/") for p in parts if p and p.strip("/"))


class LocalStore:
    """A directory as an object store. Writes are atomic (temp file, then link or rename)."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def _path(self, key: str) -> Path:
        path = (self.root / key).resolve()
        if not path.is_relative_to(self.root.resolve()):
            raise ConfigError(f"key {key!r} escapes the store root {self.root}")
        return path

    def read_bytes(self, key: str) -> bytes:
        try:
            return self._path(key).read_bytes()
        except FileNotFoundError:
            raise StorageError(f"no object {self.uri(key)}") from None

    def write_bytes(
        self, key: str, data: bytes, *, content_type: str | None = None, create_only: bool = False
    ) -> None:
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
            if create_only:
                # link() fails if the target exists: an atomic create-only write.
                try:
                    os.link(tmp, path)
                except FileExistsError:
                    raise ObjectExistsError(f"object exists: {self.uri(key)}") from None
            else:
                os.replace(tmp, path)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)

    def list(self, prefix: str) -> list[str]:
        base = self.root.resolve()
        start = self._path(prefix) if prefix else base
        # A prefix may end inside a name ('runs/r1/part-'), so walk its directory.
        walk_root = start if start.is_dir() else start.parent
        if not walk_root.exists():
            return []
        keys = []
        for path in walk_root.rglob("*"):
            if path.is_file() and not path.name.startswith(".tmp-"):
                key = path.relative_to(base).as_posix()
                if key.startswith(prefix.lstrip("/")):
                    keys.append(key)
        return sorted(keys)

    def exists(self, key: str) -> bool:
        return self._path(key).is_file()

    def uri(self, key: str) -> str:
        return (self.root / key).resolve().as_uri()


_TRANSIENT_CODES = {
    "InternalError",
    "ServiceUnavailable",
    "SlowDown",
    "RequestTimeout",
    "RequestTimeTooSkewed",
    "Throttling",
    "ThrottlingException",
    "ConditionalRequestConflict",
    "OperationAborted",
}


def _s3_error(exc: Exception, what: str) -> Exception:
    """Map a botocore exception to a recoverable or fatal ttscale error."""
    from botocore.exceptions import (
        ClientError,
        ConnectionClosedError,
        ConnectTimeoutError,
        EndpointConnectionError,
        ReadTimeoutError,
    )

    if isinstance(
        exc,
        EndpointConnectionError | ConnectionClosedError | ReadTimeoutError | ConnectTimeoutError,
    ):
        return TransientStorageError(f"{what}: {type(exc).__name__}")
    if isinstance(exc, ClientError):
        code = str(exc.response.get("Error", {}).get("Code", ""))
        status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)
        if code in _TRANSIENT_CODES or status >= 500 or status == 429:
            return TransientStorageError(f"{what}: {code or status}")
        if code in {"PreconditionFailed"} or status == 412:
            return ObjectExistsError(f"object exists: {what}")
        if code in {"NoSuchKey", "404", "NotFound"}:
            return StorageError(f"no object {what}")
        if status == 403:
            return StorageError(
                f"{what}: access denied ({code}); check AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY "
                "and the endpoint (AWS_ENDPOINT_URL)"
            )
        return StorageError(f"{what}: {code} {exc.response.get('Error', {}).get('Message', '')}")
    return exc


class S3Store:
    """A bucket as an object store, through boto3."""

    def __init__(self, bucket: str, client: Any | None = None) -> None:
        self.bucket = bucket
        self._client = client or make_s3_client()

    def _call(self, what: str, fn: Any, **kwargs: Any) -> Any:
        try:
            return fn(Bucket=self.bucket, **kwargs)
        except Exception as exc:
            mapped = _s3_error(exc, what)
            if mapped is exc:
                raise
            raise mapped from None

    @retry_transient
    def read_bytes(self, key: str) -> bytes:
        body = self._call(self.uri(key), self._client.get_object, Key=key)["Body"]
        try:
            return bytes(body.read())
        except Exception as exc:
            raise _s3_error(exc, self.uri(key)) from None

    @retry_transient
    def write_bytes(
        self, key: str, data: bytes, *, content_type: str | None = None, create_only: bool = False
    ) -> None:
        extra: dict[str, Any] = {"ContentType": content_type} if content_type else {}
        if create_only:
            extra["IfNoneMatch"] = "*"
        try:
            self._call(self.uri(key), self._client.put_object, Key=key, Body=data, **extra)
        except ObjectExistsError:
            raise
        except TransientStorageError:
            # A retried create-only put may find its own earlier attempt landed; identical
            # content means the write happened, anything else is a real conflict.
            if create_only and self._same_content(key, data):
                return
            raise

    def _same_content(self, key: str, data: bytes) -> bool:
        try:
            return self.read_bytes(key) == data
        except StorageError:
            return False

    @retry_transient
    def list(self, prefix: str) -> list[str]:
        keys: list[str] = []
        token: str | None = None
        while True:
            kwargs: dict[str, Any] = {"Prefix": prefix}
            if token:
                kwargs["ContinuationToken"] = token
            page = self._call(self.uri(prefix), self._client.list_objects_v2, **kwargs)
            keys.extend(obj["Key"] for obj in page.get("Contents", []))
            if not page.get("IsTruncated"):
                return sorted(keys)
            token = page["NextContinuationToken"]

    @retry_transient
    def exists(self, key: str) -> bool:
        try:
            self._call(self.uri(key), self._client.head_object, Key=key)
            return True
        except StorageError as exc:
            if isinstance(exc, ObjectExistsError):
                raise
            if "no object" in str(exc) or "404" in str(exc) or "Not Found" in str(exc):
                return False
            raise

    def uri(self, key: str) -> str:
        return f"s3://{self.bucket}/{key}"


def make_s3_client() -> Any:
    """A boto3 S3 client from the standard AWS environment; path-style when an endpoint is set."""
    import boto3
    from botocore.config import Config

    endpoint = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
    addressing = os.environ.get("TTSCALE_S3_ADDRESSING", "path" if endpoint else "auto")
    config = Config(
        s3={"addressing_style": addressing},  # type: ignore[arg-type]
        # tenacity owns retries (jittered, bounded); botocore retrying too would multiply them.
        retries={"max_attempts": 1, "mode": "standard"},
        connect_timeout=10,
        read_timeout=60,
    )
    return boto3.client("s3", endpoint_url=endpoint, config=config)


def open_store(uri: str) -> tuple[ObjectStore, str]:
    """The store holding ``uri`` and the key (or prefix) inside it.

    ``s3://bucket/a/b`` → (S3Store(bucket), "a/b"); ``file:///x/y`` or ``x/y`` → (LocalStore, "").
    A local URI's whole path is the store root, so keys are relative to it.
    """
    parsed = urlparse(uri)
    if parsed.scheme == "s3":
        if not parsed.netloc:
            raise ConfigError(f"no bucket in {uri!r}")
        return S3Store(parsed.netloc), parsed.path.lstrip("/")
    if parsed.scheme == "file":
        path = Path(parsed.netloc + parsed.path) if parsed.netloc else Path(parsed.path)
        return LocalStore(path), ""
    if parsed.scheme and len(parsed.scheme) > 1:
        raise ConfigError(f"unsupported storage scheme {parsed.scheme!r} in {uri!r}")
    return LocalStore(Path(uri)), ""


def open_object(uri: str) -> tuple[ObjectStore, str]:
    """Like ``open_store`` but for one object: a local file's parent is the store root."""
    parsed = urlparse(uri)
    if parsed.scheme == "s3":
        return open_store(uri)
    path = Path(parsed.netloc + parsed.path) if parsed.scheme == "file" else Path(uri)
    return LocalStore(path.parent), path.name
