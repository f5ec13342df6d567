"""Output locations with spaces, %, # and non-ASCII work end to end: every URI ttscale prints
opens the object it names (local and S3)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from flows.batch import ttscale_batch
from ttscale.schemas import BatchRequest
from ttscale.storage import LocalStore, open_object, open_store

ODD = "out dir %20 #1 é"


def test_local_uris_round_trip(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / ODD)
    store.write_bytes("runs/r/x y%#é.json", b"{}")
    uri = store.uri("runs/r/x y%#é.json")
    assert uri.startswith("file://") and " " not in uri  # a URI: percent-encoded
    opened, key = open_object(uri)
    assert opened.read_bytes(key) == b"{}"
    root, prefix = open_store(LocalStore(tmp_path / ODD).uri(""))
    assert root.read_bytes("runs/r/x y%#é.json") == b"{}" and prefix == ""


def test_s3_keys_round_trip(s3_env: str) -> None:
    store, prefix = open_store(f"s3://{s3_env}/{ODD}")
    store.write_bytes(f"{prefix}/a b%#é.txt", b"ok")
    opened, key = open_object(store.uri(f"{prefix}/a b%#é.txt"))
    assert opened.read_bytes(key) == b"ok"


@pytest.mark.usefixtures("prefect_harness")
def test_a_batch_into_an_odd_folder(tmp_path: Path, write_jsonl: Callable[..., Path]) -> None:
    lines = [json.dumps({"id": "a", "question": "What is 1 plus 1?", "answer": "2"})]
    out = tmp_path / ODD
    request = BatchRequest.model_validate(
        {
            "input_uri": str(write_jsonl(tmp_path / "in put é.jsonl", lines)),
            "output_uri": out.as_uri(),
            "ledger_path": str(out / "ledger.duckdb"),
            "engine": {"kind": "scripted"},
            "strategies": [{"kind": "majority", "n": [1]}],
        }
    )
    result = ttscale_batch(request)
    assert result["units_added"] == 1
    for uri in result["report"].values():
        store, key = open_object(uri)
        assert store.read_bytes(key)
    assert (out / "runs" / result["run_id"] / "report" / "report.html").is_file()
