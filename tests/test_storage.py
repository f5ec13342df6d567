"""Storage on local paths and on S3 through moto's server over HTTP."""

from __future__ import annotations

from pathlib import Path

import pytest

from ttscale.errors import ConfigError, ObjectExistsError, StorageError
from ttscale.storage import LocalStore, ObjectStore, S3Store, open_object, open_store


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
