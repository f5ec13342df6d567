"""Shard workers write no pod-local state: parts go to the object store, the parent ingests.

The choice (infra/README.md, "The shared ledger"): a ``ttscale-shard`` run writes its shard's
part objects and ``done.json`` to the run's output store and never opens the ledger; the batch's
own flow run ingests every part into the lake. This runs the shard flow as a pod would
(``shard_pod.py``: ``flows/shard.py:ttscale_shard`` in a subprocess) with an S3 output on moto,
its working directory, HOME and TMPDIR fresh and checked empty afterwards, and a ledger path the
worker may not create. Then the parent's ingest reads the parts from S3 alone.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from ttscale.ledger import Ledger
from ttscale.schemas import BatchRequest
from ttscale.service import ingest, plan_batch, resolve_run
from ttscale.storage import open_store

REPO = Path(__file__).resolve().parents[2]
DEMO = REPO / "ttscale" / "data" / "demo.jsonl"


def test_shard_pods_write_only_to_the_object_store(s3_env: str, tmp_path: Path) -> None:
    parent = tmp_path / "parent"
    request = BatchRequest.model_validate({
        "input_uri": str(DEMO), "output_uri": f"s3://{s3_env}/out", "max_items": 6,
        "ledger_path": str(parent / "ledger.sqlite"), "shard_size": 3, "run_id": "pods",
        "engine": {"kind": "scripted", "accuracy": 0.7},
        "strategies": [{"kind": "majority", "n": [1, 3]}],
        "shard_deployment": "ttscale-shard/gpu",
    })  # fmt: skip
    plan = plan_batch(resolve_run(request))  # the parent's step: shard inputs to the store
    assert len(plan.shards) == 2

    pod = {name: tmp_path / "pod" / name for name in ("cwd", "home", "tmp")}
    for folder in pod.values():
        folder.mkdir(parents=True)
    (tmp_path / "request.json").write_text(request.model_dump_json())
    prefect_home = tmp_path / "prefect-home"  # Prefect's own ephemeral API (a pod has a server)
    env = os.environ | {
        "HOME": str(pod["home"]), "TMPDIR": str(pod["tmp"]), "PREFECT_HOME": str(prefect_home),
        "XDG_CACHE_HOME": str(pod["home"] / ".cache"), "PYTHONPATH": str(REPO),
        "AWS_EC2_METADATA_DISABLED": "true",
        # Its start-up on 2 busy cores can take longer than Prefect's default 20 s.
        "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "300",
    }  # fmt: skip
    done = subprocess.run(
        [sys.executable, str(Path(__file__).with_name("shard_pod.py")),
         str(tmp_path / "request.json"), *[s.prefix for s in plan.shards]],
        cwd=pod["cwd"], env=env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]

    left = {name: sorted(p.name for p in folder.rglob("*")) for name, folder in pod.items()}
    assert left == {"cwd": [], "home": [], "tmp": []}, left
    assert not parent.exists()  # the workers never opened the ledger
    store, prefix = open_store(request.output_uri)
    keys = store.list(f"{prefix}/runs/pods/shards/".lstrip("/"))
    for shard in plan.shards:
        assert any(k.endswith(f"{shard.prefix.rsplit('/', 1)[-1]}/done.json") for k in keys), keys
        assert any("/part-" in k and shard.prefix.rsplit("/", 1)[-1] in k for k in keys), keys

    summary = ingest(resolve_run(request), plan)  # the parent, from the store alone
    assert summary.units_added == 6 * 2
    with Ledger(request.ledger_path, read_only=True) as ledger:
        _, rows = ledger.query(
            "SELECT count(*), sum(completion_tokens) FROM generation_calls WHERE run_id = 'pods'"
        )
    assert rows[0][0] == 6 * (1 + 3) and rows[0][1] == summary.totals["completion_tokens"]
