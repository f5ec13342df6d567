"""Transient S3 failures on ~20% of calls plus engine request failures: the batch still completes,
with the token totals of a run that saw no faults."""

from __future__ import annotations

import random
import threading
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.awsrequest import AWSPreparedRequest, AWSResponse
from botocore.httpsession import URLLib3Session
from service_helpers import (
    UNITS_PER_ITEM,
    ledger_rows,
    ledger_totals,
    question_lines,
    scripted_request,
)

import ttscale.storage.s3
from flows.batch import ttscale_batch

ITEMS = 24
FAULT_RATE = 0.2
SLOW_DOWN = (
    b"<?xml version='1.0' encoding='UTF-8'?><Error><Code>SlowDown</Code>"
    b"<Message>injected</Message></Error>"
)


class _Body:
    def __init__(self, data: bytes) -> None:
        self.data = data

    def stream(self, **_: Any) -> Any:
        yield self.data


class S3Faults:
    """A ``before-send`` hook: fails ``rate`` of S3 calls with a 503.

    Half of those first deliver the request, so a write lands but its answer is lost (the case
    that makes retried create-only writes tricky).
    """

    def __init__(self, rate: float, seed: int = 5) -> None:
        self.rate = rate
        self.rng = random.Random(seed)
        self.lock = threading.Lock()
        self.calls = self.refused = self.lost = 0
        self.http = URLLib3Session()

    def __call__(self, request: AWSPreparedRequest, **_: Any) -> AWSResponse | None:
        with self.lock:
            self.calls += 1
            draw = self.rng.random()
        if draw >= self.rate:
            return None
        if draw < self.rate / 2:
            self.http.send(request)
            with self.lock:
                self.lost += 1
        else:
            with self.lock:
                self.refused += 1
        return AWSResponse(request.url, 503, {}, _Body(SLOW_DOWN))  # type: ignore[arg-type]


def test_batch_completes_through_s3_and_engine_faults(
    prefect_api: str,
    s3_env: str,
    moto_server: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    bucket = s3_env
    boto3.client("s3", endpoint_url=moto_server).put_object(
        Bucket=bucket, Key="in/questions.jsonl", Body="\n".join(question_lines(ITEMS)).encode()
    )
    # Engine: ~20% of requests fail recoverably (at most twice each, so retries get through).
    engine = {"fail_rate": FAULT_RATE}
    clean_out = tmp_path / "clean"
    clean = ttscale_batch(
        scripted_request(
            f"s3://{bucket}/in/questions.jsonl", f"file://{clean_out}",
            clean_out / "ledger.duckdb", shard_size=6, engine=engine,
        )
    )  # fmt: skip

    faults = S3Faults(FAULT_RATE)
    make_client = ttscale.storage.s3.make_s3_client
    requests_before = scripted_requests()

    def faulty_client() -> Any:
        client = make_client()
        client.meta.events.register("before-send.s3.*", faults)
        return client

    monkeypatch.setattr(ttscale.storage.s3, "make_s3_client", faulty_client)
    faulty_ledger = tmp_path / "faulty.duckdb"
    faulty = ttscale_batch(
        scripted_request(
            f"s3://{bucket}/in/questions.jsonl", f"s3://{bucket}/out", faulty_ledger,
            shard_size=6, engine=engine,
        )
    )  # fmt: skip

    assert faults.refused > 5 and faults.lost > 5, vars(faults)
    assert faulty["run_id"] == clean["run_id"]
    totals = ledger_totals(faulty_ledger, faulty["run_id"])
    assert totals == ledger_totals(clean_out / "ledger.duckdb", clean["run_id"])
    assert totals["units"] == totals["distinct_units"] == ITEMS * UNITS_PER_ITEM
    assert totals["error_units"] == 0
    # The engine did fail: this run sent it more requests than it recorded generated calls (the
    # calls served from the sample cache sent none). Counted for this run alone: the engine
    # host keeps its engines, and their counts, for the whole test process.
    generated = generated_calls(faulty_ledger, faulty["run_id"])
    assert 0 < generated < totals["calls"]
    assert scripted_requests() - requests_before > generated
    report_keys = boto3.client("s3", endpoint_url=moto_server).list_objects_v2(
        Bucket=bucket, Prefix=f"out/runs/{faulty['run_id']}/report/"
    )
    assert {o["Key"].rsplit(".", 1)[-1] for o in report_keys.get("Contents", [])} >= {"json", "md"}


def scripted_requests() -> int:
    """Requests the process's scripted engines have received so far."""
    from ttscale.engines.host import engine_host

    engines = engine_host()._engines.values()
    return sum(getattr(e, "requests", 0) for e in engines if e.name.startswith("scripted"))


def generated_calls(ledger: Path, run_id: str) -> int:
    """The run's calls that the engine generated (not served from the sample cache)."""
    ((generated,),) = ledger_rows(
        ledger,
        run_id,
        "SELECT count(*) FILTER (WHERE NOT coalesce(cached, false)) FROM generation_calls "
        "WHERE run_id = ?",
    )
    return int(generated)
