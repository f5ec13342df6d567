"""End to end against a real S3 server (SeaweedFS) that checks credentials."""

from __future__ import annotations

import uuid
from pathlib import Path

import boto3
import pytest
from service_helpers import UNITS_PER_ITEM, ledger_totals, question_lines, scripted_request

from flows.batch import ttscale_batch
from ttscale.errors import StorageError
from ttscale.service import plan_batch, resolve_run
from ttscale.storage import open_store

ITEMS = 12


@pytest.fixture
def seaweed_bucket(seaweed: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> str:
    """A fresh bucket holding ``in/questions.jsonl``; the AWS environment points at SeaweedFS."""
    for name, value in seaweed.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_ENDPOINT_URL_S3", raising=False)
    # boto3's default session caches the first credentials it resolved (e.g. moto's).
    monkeypatch.setattr(boto3, "DEFAULT_SESSION", None)
    bucket = f"ttscale-{uuid.uuid4().hex[:8]}"
    client = boto3.client("s3", endpoint_url=seaweed["AWS_ENDPOINT_URL"])
    client.create_bucket(Bucket=bucket)
    client.put_object(
        Bucket=bucket, Key="in/questions.jsonl", Body="\n".join(question_lines(ITEMS)).encode()
    )
    return bucket


def test_batch_end_to_end_on_seaweedfs(
    prefect_api: str, seaweed_bucket: str, tmp_path: Path
) -> None:
    bucket = seaweed_bucket
    request = scripted_request(
        f"s3://{bucket}/in/", f"s3://{bucket}/out", tmp_path / "ledger.duckdb", shard_size=5
    )
    first = ttscale_batch(request)
    totals = ledger_totals(tmp_path / "ledger.duckdb", first["run_id"])
    assert totals["units"] == totals["distinct_units"] == ITEMS * UNITS_PER_ITEM
    assert first["report"]["json"].startswith(f"s3://{bucket}/out/runs/{first['run_id']}/report/")

    store, _ = open_store(f"s3://{bucket}")
    keys = store.list(f"out/runs/{first['run_id']}/")
    assert sum(k.endswith("/done.json") for k in keys) == 3
    assert any("/part-" in k for k in keys)
    # Create-only writes are enforced by the server itself.
    with pytest.raises(StorageError, match="exists"):
        store.write_bytes(keys[0], b"other", create_only=True)

    again = ttscale_batch(request)  # a re-run resumes: nothing regenerated, nothing added
    assert again["units_added"] == 0 and again["calls_added"] == 0
    assert ledger_totals(tmp_path / "ledger.duckdb", first["run_id"]) == totals


def test_wrong_credentials_are_a_clear_storage_error(
    seaweed_bucket: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "not-the-secret")
    monkeypatch.setattr(boto3, "DEFAULT_SESSION", None)
    store, _ = open_store(f"s3://{seaweed_bucket}")
    with pytest.raises(StorageError, match="access denied") as denied:
        store.read_bytes("in/questions.jsonl")
    assert "AWS_SECRET_ACCESS_KEY" in str(denied.value)
    assert "not-the-secret" not in str(denied.value)
    with pytest.raises(StorageError, match="access denied"):
        store.write_bytes("out/x", b"x", create_only=True)
    request = scripted_request(
        f"s3://{seaweed_bucket}/in/", f"s3://{seaweed_bucket}/out", tmp_path / "l.duckdb"
    )
    with pytest.raises(StorageError):
        plan_batch(resolve_run(request))
