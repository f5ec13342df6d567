"""S3 through a fault-injecting proxy: 503 SlowDown, connection resets, lost replies (the write
landed, the answer never came) and late writes (the write lands after the client gave up on it).

Create-only writes must stay exactly-once: a retry that meets the client's own earlier attempt
(412 PreconditionFailed) accepts identical bytes and refuses different ones.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest
from fault_proxy import Fault, FaultProxy

from flows.batch import ttscale_batch
from ttscale.errors import ObjectExistsError
from ttscale.storage import S3Store

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "service"))
from service_helpers import (
    UNITS_PER_ITEM,
    ledger_totals,
    question_lines,
    scripted_request,
)

PROBE_WRITES = 150
FAULT_RATE = 0.2


@pytest.fixture
def proxy(s3_env: str, moto_server: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[FaultProxy]:
    """A fault proxy in front of moto (no faults until a test asks); AWS_ENDPOINT_URL points at it."""
    with FaultProxy(moto_server, seed=7) as fault_proxy:
        monkeypatch.setenv("AWS_ENDPOINT_URL", fault_proxy.url)
        yield fault_proxy


def _stored(moto_server: str, bucket: str, key: str) -> bytes:
    client = boto3.client("s3", endpoint_url=moto_server)
    return bytes(client.get_object(Bucket=bucket, Key=key)["Body"].read())


def test_proxy_forwards_cleanly(proxy: FaultProxy, s3_env: str, moto_server: str) -> None:
    store = S3Store(s3_env)
    store.write_bytes("a/b.txt", b"hello", content_type="text/plain")
    assert store.read_bytes("a/b.txt") == b"hello"
    assert store.exists("a/b.txt") and not store.exists("a/nope")
    assert store.list("a/") == ["a/b.txt"]
    assert _stored(moto_server, s3_env, "a/b.txt") == b"hello"
    assert set(proxy.counts()) == {"ok"}


@pytest.mark.parametrize("fault", ["slowdown", "reset", "lost_reply", "late_write"])
def test_create_only_write_survives_one_fault(
    proxy: FaultProxy, s3_env: str, moto_server: str, fault: Fault
) -> None:
    """Each fault once on the first PUT: the write happens exactly once and succeeds."""
    proxy.plan.applies = lambda method, path: method == "PUT"
    proxy.force(fault)
    S3Store(s3_env).write_bytes("k/once.json", b'{"x": 1}', create_only=True)
    assert _stored(moto_server, s3_env, "k/once.json") == b'{"x": 1}'
    assert proxy.counts()[fault] == 1


def test_retry_meets_its_own_landed_write(
    proxy: FaultProxy, s3_env: str, moto_server: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The first PUT lands but its reply is lost; the check read fails through its retries; the
    retried PUT gets 412 PreconditionFailed: identical bytes, so the write succeeded."""
    monkeypatch.setenv("TTSCALE_RETRY_ATTEMPTS", "2")
    proxy.force("lost_reply", "slowdown", "slowdown", None, None)  # PUT, GET, GET, PUT (412), GET
    S3Store(s3_env).write_bytes("k/412.json", b"mine", create_only=True)
    assert [(d.method, d.fault) for d in proxy.log] == [
        ("PUT", "lost_reply"),
        ("GET", "slowdown"),
        ("GET", "slowdown"),
        ("PUT", None),
        ("GET", None),
    ]
    assert _stored(moto_server, s3_env, "k/412.json") == b"mine"


def test_late_write_meets_412_and_is_accepted(
    proxy: FaultProxy, s3_env: str, moto_server: str
) -> None:
    """The first PUT lands only after the client's check read found nothing; its retry meets 412."""
    proxy.force("late_write")
    S3Store(s3_env).write_bytes("k/late.json", b"mine", create_only=True)
    assert [(d.method, d.fault) for d in proxy.log] == [
        ("PUT", "late_write"),
        ("GET", None),  # 404: not landed yet
        ("PUT", None),  # the late write lands first, so this one gets 412
        ("GET", None),  # same bytes: done
    ]
    assert _stored(moto_server, s3_env, "k/late.json") == b"mine"


@pytest.mark.parametrize("fault", [None, "lost_reply", "late_write"])
def test_create_only_conflict_still_raises(
    proxy: FaultProxy, s3_env: str, moto_server: str, fault: Fault | None
) -> None:
    """Other content already stored: ObjectExistsError, with or without a fault, and it stays."""
    boto3.client("s3", endpoint_url=moto_server).put_object(
        Bucket=s3_env, Key="k/taken", Body=b"theirs"
    )
    proxy.plan.applies = lambda method, path: method == "PUT"
    proxy.force(fault)
    with pytest.raises(ObjectExistsError):
        S3Store(s3_env).write_bytes("k/taken", b"mine", create_only=True)
    assert _stored(moto_server, s3_env, "k/taken") == b"theirs"


def test_create_only_identical_but_not_ours_still_raises(
    proxy: FaultProxy, s3_env: str, moto_server: str
) -> None:
    """No attempt of this call was in doubt: a 412 is someone else's object (behaviour kept)."""
    boto3.client("s3", endpoint_url=moto_server).put_object(
        Bucket=s3_env, Key="k/same", Body=b"same"
    )
    with pytest.raises(ObjectExistsError):
        S3Store(s3_env).write_bytes("k/same", b"same", create_only=True)


@pytest.mark.parametrize(
    "faults",
    [("slowdown", "reset", "lost_reply", "late_write"), ("late_write",)],
    ids=["all-faults", "late-writes"],
)
def test_probe_150_create_only_writes_under_faults(
    proxy: FaultProxy, s3_env: str, moto_server: str, faults: tuple[Fault, ...]
) -> None:
    """The reported probe ("21 of 150 create-only writes failed"), through the proxy: 0 fail.

    Before the fix in S3Store.write_bytes (a retried create-only PUT that met 412 raised
    ObjectExistsError without comparing), this seed failed 6 of 150 with all faults and 21 of
    150 with late writes alone; lost replies alone (the write landed before the reply was
    dropped) already passed.
    """
    proxy.set_rate(FAULT_RATE)
    proxy.plan.faults = faults
    store = S3Store(s3_env)
    failures = []
    for i in range(PROBE_WRITES):
        try:
            store.write_bytes(f"probe/{i:03d}.jsonl", f"part {i}\n".encode(), create_only=True)
        except Exception as exc:
            failures.append(f"{i}: {exc!r}")
    counts = proxy.counts()
    assert failures == [], f"{len(failures)} of {PROBE_WRITES} failed: {failures[:5]} {counts}"
    assert all(counts[f] >= 5 for f in faults), counts
    listed = boto3.client("s3", endpoint_url=moto_server).list_objects_v2(
        Bucket=s3_env, Prefix="probe/"
    )
    assert len(listed["Contents"]) == PROBE_WRITES
    for i in (0, 77, PROBE_WRITES - 1):
        assert _stored(moto_server, s3_env, f"probe/{i:03d}.jsonl") == f"part {i}\n".encode()


ITEMS = 24


@pytest.mark.usefixtures("prefect_harness")
def test_batch_through_the_fault_proxy_equals_a_clean_run(
    proxy: FaultProxy, s3_env: str, moto_server: str, tmp_path: Path
) -> None:
    """A whole batch, input and output on s3:// through 20% faults: the ledger of a clean run."""
    bucket = s3_env
    boto3.client("s3", endpoint_url=moto_server).put_object(
        Bucket=bucket, Key="in/questions.jsonl", Body="\n".join(question_lines(ITEMS)).encode()
    )
    clean_out = tmp_path / "clean"
    clean_request = scripted_request(
        f"s3://{bucket}/in/questions.jsonl", f"file://{clean_out}", clean_out / "ledger.duckdb",
        shard_size=6,
    )  # fmt: skip
    clean = ttscale_batch(clean_request)
    proxy.log.clear()

    proxy.set_rate(FAULT_RATE)
    proxy.plan.faults = ("slowdown", "reset", "lost_reply", "late_write")
    faulty_ledger = tmp_path / "faulty.duckdb"
    faulty = ttscale_batch(
        clean_request.model_copy(
            update={"output_uri": f"s3://{bucket}/out", "ledger_path": str(faulty_ledger)}
        )
    )
    proxy.set_rate(0.0)

    counts = proxy.counts()
    assert all(counts[f] >= 1 for f in ("slowdown", "reset", "lost_reply", "late_write")), counts
    assert counts.total() - counts["ok"] >= 10, counts
    assert faulty["run_id"] == clean["run_id"]
    totals = ledger_totals(faulty_ledger, faulty["run_id"])
    assert totals == ledger_totals(clean_out / "ledger.duckdb", clean["run_id"])
    assert totals["units"] == totals["distinct_units"] == ITEMS * UNITS_PER_ITEM
    assert totals["error_units"] == 0
    assert totals["completion_tokens"] == totals["unit_completion_tokens"] > 0
    keys = boto3.client("s3", endpoint_url=moto_server).list_objects_v2(
        Bucket=bucket, Prefix=f"out/runs/{faulty['run_id']}/"
    )
    names = {o["Key"].split(f"{faulty['run_id']}/", 1)[1] for o in keys.get("Contents", [])}
    assert {"report/report.json", "report/report.md", "report/report.html"} <= names
    assert {f"shards/{i:05d}/done.json" for i in range(ITEMS // 6)} <= names
