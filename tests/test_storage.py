"""Storage on local paths and on S3 through moto's server over HTTP."""

from __future__ import annotations

import os
import stat
import time
from pathlib import Path

import pytest

from ttscale.errors import ConfigError, ObjectExistsError, StorageError, TransientStorageError
from ttscale.storage import (
    LocalStore,
    ObjectStore,
    S3Store,
    StorageNotFoundError,
    _s3_error,
    browser_link,
    check_credentials,
    make_s3_client,
    open_object,
    open_store,
)


def _exercise(store: ObjectStore) -> None:
    store.write_bytes("a/b/one.txt", b"1")
    store.write_bytes("a/b/one.txt", b"2")  # plain writes overwrite
    assert store.read_bytes("a/b/one.txt") == b"2"
    store.write_bytes("a/c.txt", b"c", create_only=True)
    with pytest.raises(ObjectExistsError):
        store.write_bytes("a/c.txt", b"other", create_only=True)
    assert store.read_bytes("a/c.txt") == b"c"
    store.write_bytes("a/part-2.jsonl", b"")
    store.write_bytes("a/part-1.jsonl", b"")
    assert store.list("a/part-") == ["a/part-1.jsonl", "a/part-2.jsonl"]
    assert store.list("a/") == ["a/b/one.txt", "a/c.txt", "a/part-1.jsonl", "a/part-2.jsonl"]
    assert store.exists("a/c.txt") and not store.exists("a/missing")
    with pytest.raises(StorageError, match="no object"):
        store.read_bytes("a/missing")


def test_local_store(tmp_path: Path) -> None:
    _exercise(LocalStore(tmp_path))
    assert not list(tmp_path.rglob(".tmp-*")), "temporary files must not be left behind"


def test_local_store_refuses_escaping_keys(tmp_path: Path) -> None:
    with pytest.raises(ConfigError):
        LocalStore(tmp_path / "root").write_bytes("../outside.txt", b"x")


def test_s3_store_over_http(s3_env: str) -> None:
    _exercise(S3Store(s3_env))


def test_s3_list_paginates(s3_env: str) -> None:
    store = S3Store(s3_env)
    for i in range(1005):  # over one list page (1000 keys)
        store._client.put_object(Bucket=s3_env, Key=f"many/{i:04d}", Body=b"")
    keys = store.list("many/")
    assert len(keys) == 1005 and keys[0] == "many/0000" and keys[-1] == "many/1004"


def test_open_store_schemes(tmp_path: Path) -> None:
    store, key = open_store("s3://bucket/some/prefix")
    assert isinstance(store, S3Store) and store.bucket == "bucket" and key == "some/prefix"
    local, key = open_store(f"file://{tmp_path}")
    assert isinstance(local, LocalStore) and key == ""
    one, name = open_object(str(tmp_path / "x.jsonl"))
    assert isinstance(one, LocalStore) and name == "x.jsonl"
    with pytest.raises(ConfigError):
        open_store("gs://bucket/x")


# --- file modes ----------------------------------------------------------------------------------


@pytest.mark.parametrize(("umask", "mode"), [(0o022, 0o644), (0o027, 0o640)])
def test_local_files_honour_the_umask(tmp_path: Path, umask: int, mode: int) -> None:
    old = os.umask(umask)
    try:
        store = LocalStore(tmp_path)
        store.write_bytes("out/plain.json", b"{}")
        store.write_bytes("out/once.json", b"{}", create_only=True)
    finally:
        os.umask(old)
    for name in ("plain.json", "once.json"):
        assert stat.S_IMODE((tmp_path / "out" / name).stat().st_mode) == mode, name


def test_local_write_errors_are_storage_errors(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    with pytest.raises(StorageError, match="cannot write"):
        LocalStore(tmp_path).write_bytes("file/below.txt", b"x")  # a file where a folder goes


# --- errors a user can cause ---------------------------------------------------------------------


def test_no_credentials_is_a_clear_storage_error(
    s3_env: str, no_aws_credentials: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    started = time.monotonic()
    store = S3Store(s3_env)
    with pytest.raises(StorageError, match="no AWS credentials found") as err:
        store.read_bytes("x.jsonl")
    assert err.value.exit_code == 4
    assert "AWS_ACCESS_KEY_ID" in str(err.value) and "AWS_SECRET_ACCESS_KEY" in str(err.value)
    assert "AWS_PROFILE" in str(err.value)
    with pytest.raises(StorageError, match="no AWS credentials found"):
        check_credentials(f"s3://{s3_env}/in/", "file:///tmp/out")
    check_credentials("file:///tmp/in", "/tmp/out")  # nothing to check for local URIs
    assert time.monotonic() - started < 5

    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "only-the-key")
    with pytest.raises(StorageError, match="lacks AWS_SECRET_ACCESS_KEY"):
        check_credentials(f"s3://{s3_env}/in/")
    with pytest.raises(StorageError, match="lacks AWS_SECRET_ACCESS_KEY"):
        S3Store(s3_env).read_bytes("x.jsonl")


def test_unknown_profile_is_a_storage_error(
    no_aws_credentials: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_PROFILE", "nope")
    with pytest.raises(StorageError, match="AWS profile 'nope'"):
        check_credentials("s3://bucket/in/")
    with pytest.raises(StorageError, match="AWS profile 'nope'"):
        S3Store("bucket")


def test_credentials_present(s3_env: str) -> None:
    check_credentials(f"s3://{s3_env}/in/")


def test_unreachable_endpoint_fails_fast(unreachable_s3: str) -> None:
    store = S3Store("bucket")
    for call in (
        lambda: store.read_bytes("k"),
        lambda: store.write_bytes("k", b"x", create_only=True),
        lambda: store.list("p/"),
        lambda: store.exists("k"),
    ):
        started = time.monotonic()
        with pytest.raises(StorageError, match="cannot connect to the S3 endpoint") as err:
            call()
        assert time.monotonic() - started < 10
        assert not isinstance(err.value, TransientStorageError) and err.value.exit_code == 4
        assert unreachable_s3 in str(err.value) and "gave up after 6 attempts" in str(err.value)


def test_unreachable_endpoint_is_retried_as_configured(
    unreachable_s3: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TTSCALE_RETRY_ATTEMPTS", "2")
    client = make_s3_client()
    calls = 0
    real = client.get_object

    def counting(**kwargs: object) -> object:
        nonlocal calls
        calls += 1
        return real(**kwargs)

    client.get_object = counting
    with pytest.raises(StorageError, match="gave up after 2 attempts"):
        S3Store("bucket", client=client).read_bytes("k")
    assert calls == 2


def test_missing_bucket_is_storage_not_found(s3_env: str) -> None:
    store = S3Store("ttscale-no-such-bucket")
    with pytest.raises(StorageNotFoundError, match="no such bucket 'ttscale-no-such-bucket'"):
        store.list("x/")
    with pytest.raises(StorageNotFoundError):
        store.read_bytes("x.jsonl")


def test_transient_errors_stay_recoverable() -> None:
    from botocore.exceptions import ClientError, ConnectionClosedError

    def client_error(code: str, status: int) -> ClientError:
        return ClientError(
            {
                "Error": {"Code": code, "Message": "m"},
                "ResponseMetadata": {"HTTPStatusCode": status},
            },
            "GetObject",
        )

    for exc in (
        client_error("InternalError", 500),
        client_error("SlowDown", 503),
        client_error("TooManyRequests", 429),
        ConnectionClosedError(endpoint_url="http://x"),
    ):
        assert isinstance(_s3_error(exc, "s3://b/k"), TransientStorageError), exc
    assert type(_s3_error(client_error("AccessDenied", 403), "s3://b/k")) is StorageError


def test_transient_errors_are_retried(s3_env: str) -> None:
    store = S3Store(s3_env)
    store.write_bytes("t.txt", b"ok")
    real = store._client.get_object
    failures = iter([True, True])

    def flaky(**kwargs: object) -> object:
        if next(failures, False):
            from botocore.exceptions import ClientError

            raise ClientError(
                {"Error": {"Code": "SlowDown"}, "ResponseMetadata": {"HTTPStatusCode": 503}},
                "GetObject",
            )
        return real(**kwargs)

    store._client.get_object = flaky
    assert store.read_bytes("t.txt") == b"ok"


# --- links ---------------------------------------------------------------------------------------


def test_presigned_url_fetches_the_object(s3_env: str) -> None:
    import httpx

    store = S3Store(s3_env)
    store.write_bytes("reports/r.html", b"<h1>report</h1>", content_type="text/html")
    url = store.presigned_url("reports/r.html", 300)
    assert url.startswith("http://127.0.0.1:") and "X-Amz-Signature" in url
    response = httpx.get(url)
    assert response.status_code == 200 and response.content == b"<h1>report</h1>"
    link = browser_link(f"s3://{s3_env}/reports/r.html", 60)
    assert link is not None and httpx.get(link).content == b"<h1>report</h1>"


def test_browser_link_is_none_for_local_files(tmp_path: Path) -> None:
    assert browser_link(str(tmp_path / "r.html"), 60) is None
    assert browser_link(f"file://{tmp_path}/r.html", 60) is None
    with pytest.raises(ConfigError):
        browser_link("s3://bucket/", 60)
    with pytest.raises(ConfigError):
        browser_link("s3://bucket/key", 8 * 24 * 3600)


def test_presigned_url_without_credentials(s3_env: str, no_aws_credentials: None) -> None:
    with pytest.raises(StorageError, match="no AWS credentials"):
        browser_link(f"s3://{s3_env}/k", 60)
