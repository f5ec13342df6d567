"""S3 and S3-compatible object storage through boto3.

S3 endpoint, region and credentials come from the standard AWS chain (``AWS_ENDPOINT_URL``,
``AWS_REGION``, ``AWS_ACCESS_KEY_ID``...). ``TTSCALE_S3_ADDRESSING=path`` (the default whenever an
endpoint URL is set) selects path-style addressing for S3-compatible servers.
"""

import os
from typing import Any, NoReturn
from urllib.parse import urlparse, urlsplit

from ttscale.errors import (
    ConfigError,
    ObjectExistsError,
    StorageError,
    TransientStorageError,
)
from ttscale.retry import is_retryable_status
from ttscale.storage.base import (
    MAX_PRESIGN_S,
    EndpointUnreachableError,
    StorageNotFoundError,
    _retry_s3,
)

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

CREDENTIALS_HINT = (
    "set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or AWS_PROFILE naming a profile in "
    "~/.aws/credentials (or AWS_SHARED_CREDENTIALS_FILE)"
)


def _one_line(text: object) -> str:
    return "; ".join(part.strip() for part in str(text).splitlines() if part.strip())


def _endpoint_of(exc: Exception) -> str:
    """The scheme://host:port botocore was talking to (no path, no query string)."""
    url = str(getattr(exc, "kwargs", {}).get("endpoint_url") or "")
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}" if parts.netloc else (url or "the S3 endpoint")


def _bucket_of(what: str) -> str:
    parsed = urlparse(what)
    return parsed.netloc if parsed.scheme == "s3" else what


def _s3_error(exc: Exception, what: str) -> Exception:
    """Map a botocore exception to a recoverable or fatal ttscale error.

    Anything that is not a botocore exception is returned unchanged (the caller re-raises it).
    """
    from botocore.exceptions import (
        BotoCoreError,
        ClientError,
        HTTPClientError,
        IncompleteReadError,
        NoCredentialsError,
        PartialCredentialsError,
        ProfileNotFound,
        ResponseStreamingError,
    )
    from botocore.exceptions import ConnectionError as BotoConnectionError

    if isinstance(exc, BotoConnectionError):
        # EndpointConnectionError, ConnectTimeoutError, ProxyConnectionError: retried, then fatal.
        return EndpointUnreachableError(
            f"cannot connect to the S3 endpoint {_endpoint_of(exc)} for {what}; check "
            "AWS_ENDPOINT_URL and that the server is up"
        )
    if isinstance(exc, HTTPClientError | ResponseStreamingError | IncompleteReadError):
        # Connection reset or closed mid-request, read timeout: transient.
        return TransientStorageError(f"{what}: {type(exc).__name__} ({_endpoint_of(exc)})")
    if isinstance(exc, NoCredentialsError):
        return StorageError(f"no AWS credentials found for {what}: {CREDENTIALS_HINT}")
    if isinstance(exc, PartialCredentialsError):
        provider = exc.kwargs.get("provider", "the environment")
        missing = exc.kwargs.get("cred_var", "a credential")
        return StorageError(
            f"incomplete AWS credentials for {what}: {provider} lacks {missing}; {CREDENTIALS_HINT}"
        )
    if isinstance(exc, ProfileNotFound):
        return StorageError(
            f"AWS profile {exc.kwargs.get('profile')!r} (AWS_PROFILE) not found for {what}; "
            "define it in ~/.aws/credentials or ~/.aws/config, or set AWS_ACCESS_KEY_ID and "
            "AWS_SECRET_ACCESS_KEY"
        )
    if isinstance(exc, ClientError):
        code = str(exc.response.get("Error", {}).get("Code", ""))
        status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)
        if code in _TRANSIENT_CODES or is_retryable_status(status):
            return TransientStorageError(f"{what}: {code or status}")
        if code in {"PreconditionFailed"} or status == 412:
            return ObjectExistsError(f"object exists: {what}")
        if code == "NoSuchBucket":
            return StorageNotFoundError(f"no such bucket {_bucket_of(what)!r} (for {what})")
        if code in {"NoSuchKey", "404", "NotFound"}:
            return StorageNotFoundError(f"no object {what}")
        if status == 403:
            return StorageError(
                f"{what}: access denied ({code}); check AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY "
                "and the endpoint (AWS_ENDPOINT_URL)"
            )
        message = _one_line(exc.response.get("Error", {}).get("Message", ""))
        return StorageError(f"{what}: {code} {message}".rstrip())
    if isinstance(exc, BotoCoreError):
        # ParamValidationError (e.g. an invalid bucket name) and the like: not worth retrying.
        return StorageError(f"{what}: {_one_line(exc)}")
    return exc


def _raise_mapped(exc: Exception, what: str) -> NoReturn:
    mapped = _s3_error(exc, what)
    if mapped is exc:
        raise exc
    raise mapped from None


class S3Store:
    """A bucket as an object store, through boto3."""

    def __init__(self, bucket: str, client: Any | None = None) -> None:
        self.bucket = bucket
        self._client = client or make_s3_client()

    def _call(self, what: str, fn: Any, **kwargs: Any) -> Any:
        try:
            return fn(Bucket=self.bucket, **kwargs)
        except Exception as exc:
            _raise_mapped(exc, what)

    @_retry_s3
    def read_bytes(self, key: str) -> bytes:
        body = self._call(self.uri(key), self._client.get_object, Key=key)["Body"]
        try:
            return bytes(body.read())
        except Exception as exc:
            raise _s3_error(exc, self.uri(key)) from None

    def write_bytes(
        self, key: str, data: bytes, *, content_type: str | None = None, create_only: bool = False
    ) -> None:
        extra: dict[str, Any] = {"ContentType": content_type} if content_type else {}
        if not create_only:
            self._put(key, data, extra)
            return
        extra["IfNoneMatch"] = "*"
        # Set once an attempt may have landed without our hearing back (a lost reply, a reset or
        # timeout after sending). From then on, a 412 may be our own earlier write: only
        # content that differs is a real conflict.
        uncertain = False

        @_retry_s3
        def attempt() -> None:
            nonlocal uncertain
            try:
                self._call(self.uri(key), self._client.put_object, Key=key, Body=data, **extra)
            except ObjectExistsError:
                if uncertain and self._stored(key) == data:
                    return
                raise
            except EndpointUnreachableError:
                # The put never reached the server (no connection): nothing to compare.
                raise
            except TransientStorageError:
                uncertain = True
                stored = self._stored(key)
                if stored == data:
                    return
                if stored is not None:
                    raise ObjectExistsError(f"object exists: {self.uri(key)}") from None
                raise

        attempt()

    @_retry_s3
    def _put(self, key: str, data: bytes, extra: dict[str, Any]) -> None:
        self._call(self.uri(key), self._client.put_object, Key=key, Body=data, **extra)

    def _stored(self, key: str) -> bytes | None:
        """The object's bytes, or None when it is not there (or cannot be read for good).

        Transient read errors that outlast their retries propagate, so the caller's retry loop
        tries the write (and the comparison) again.
        """
        try:
            return self.read_bytes(key)
        except StorageError:
            return None

    @_retry_s3
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

    def local_file(self, key: str) -> None:
        return None

    @_retry_s3
    def exists(self, key: str) -> bool:
        try:
            self._call(self.uri(key), self._client.head_object, Key=key)
            return True
        except StorageNotFoundError:
            return False

    def presigned_url(self, key: str, expires_s: int = 3600) -> str:
        """A time-limited https (or http, for an http endpoint) GET URL of ``key``.

        Signed locally with the current credentials: no network call, and the object is not
        checked to exist. ``expires_s`` is 1 second to 7 days.
        """
        if not 1 <= expires_s <= MAX_PRESIGN_S:
            raise ConfigError(
                f"a presigned URL expires in 1 to {MAX_PRESIGN_S} seconds, got {expires_s}"
            )
        try:
            url = self._client.generate_presigned_url(
                "get_object",
                Params={"Bucket": self.bucket, "Key": key},
                ExpiresIn=expires_s,
            )
        except Exception as exc:
            _raise_mapped(exc, self.uri(key))
        if "X-Amz-Signature=" not in url:  # botocore presigns nothing without credentials
            raise StorageError(f"no AWS credentials found for {self.uri(key)}: {CREDENTIALS_HINT}")
        return str(url)

    def uri(self, key: str) -> str:
        return f"s3://{self.bucket}/{key}"


def browser_link(uri: str, expires_s: int) -> str | None:
    """A link a browser can open for the object at ``uri``, or None where there is none.

    ``s3://bucket/key`` → a presigned GET URL valid ``expires_s`` seconds (signed locally, no
    network call). Local paths and ``file://`` URIs → None: browsers do not follow file:// links
    from web pages, so print the path instead.
    """
    if not uri.startswith("s3://"):
        return None
    bucket, key = split_s3_uri(uri)
    if not key:
        raise ConfigError(f"no object key in {uri!r}")
    return S3Store(bucket).presigned_url(key, expires_s)


def split_s3_uri(uri: str) -> tuple[str, str]:
    """``s3://bucket/key`` → (bucket, key). Keys are taken as written, like the AWS CLI does:
    ``#``, ``?`` and ``%`` are part of the key, not a fragment, a query or an escape."""
    bucket, _, key = uri.removeprefix("s3://").partition("/")
    if not bucket:
        raise ConfigError(f"no bucket in {uri!r}")
    return bucket, key.lstrip("/")


def check_credentials(*uris: str) -> None:
    """Fail fast (StorageError) if any ``uris`` is s3:// and no AWS credentials can be resolved.

    Resolves the standard chain (environment, AWS_PROFILE / shared files, ...) without calling S3.
    Only when nothing else provides credentials does botocore ask an instance metadata service,
    which is bounded by its own 1 s timeout (``AWS_EC2_METADATA_DISABLED=true`` skips it).
    Local and file:// URIs need nothing.
    """
    s3_uris = [uri for uri in uris if urlparse(uri).scheme == "s3"]
    if not s3_uris:
        return
    import boto3
    from botocore.exceptions import BotoCoreError

    try:
        # Not get_frozen_credentials(): refreshing (assume-role, SSO) would call the network.
        credentials = boto3.Session().get_credentials()
    except BotoCoreError as exc:
        raise _s3_error(exc, s3_uris[0]) from None
    if credentials is None:
        raise StorageError(f"no AWS credentials found for {s3_uris[0]}: {CREDENTIALS_HINT}")


def make_s3_client() -> Any:
    """A boto3 S3 client from the standard AWS environment; path-style when an endpoint is set."""
    import boto3
    from botocore.config import Config

    endpoint = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
    addressing = os.environ.get("TTSCALE_S3_ADDRESSING", "path" if endpoint else "auto")
    config = Config(
        s3={"addressing_style": addressing},  # type: ignore[arg-type]
        # tenacity owns retries (jittered, bounded); botocore retrying too would multiply them.
        # total_max_attempts counts the first try; botocore's max_attempts=1 would retry once.
        retries={"total_max_attempts": 1, "mode": "standard"},
        connect_timeout=5,
        read_timeout=60,
        # Explicit, or botocore presigns with legacy SigV2 in us-east-1 (refused by many servers).
        signature_version="s3v4",
    )
    try:
        return boto3.client("s3", endpoint_url=endpoint, config=config)
    except ValueError as exc:  # e.g. "Invalid endpoint: ..."
        raise ConfigError(f"invalid S3 endpoint {endpoint!r} (AWS_ENDPOINT_URL): {exc}") from None
    except Exception as exc:
        _raise_mapped(exc, f"the S3 client for {endpoint or 'AWS'}")
