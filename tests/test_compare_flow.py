"""The ttscale-compare flow under a real (temporary) Prefect API: the latest two runs of a ledger,
compared and published, with the side-by-side table as a Markdown artifact."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from prefect.utilities.callables import parameter_schema
from synthetic_ledger import synthetic_ledger, write_synthetic_ledger

from flows.compare import ttscale_compare
from ttscale.analysis.synthetic import PlantedCurve, SyntheticLedgerSpec
from ttscale.schemas import EMBEDDED_LEDGER, LEDGER_ENV

CURVES = (PlantedCurve("majority", (1, 2, 4, 8), f_max=0.8, p=0.45),)


def _two_runs(ledger: Path) -> None:
    con = synthetic_ledger(
        SyntheticLedgerSpec(curves=CURVES, items_per_slice=40, seed=1, run_id="last-week"), ledger
    )
    write_synthetic_ledger(
        con, SyntheticLedgerSpec(curves=CURVES, items_per_slice=40, seed=2, run_id="tonight")
    )
    con.close()


def test_compare_flow_publishes_and_shows_the_side_by_side_table(
    prefect_harness: None, tmp_path: Path
) -> None:
    ledger = tmp_path / "ledger.duckdb"
    _two_runs(ledger)
    result = ttscale_compare(ledger_path=str(ledger), output_uri=f"file://{tmp_path}/out")
    assert result["run_ids"] == ["last-week", "tonight"]
    published = json.loads(Path(result["uris"]["json"].removeprefix("file://")).read_text())
    assert published["compare_id"] == result["compare_id"]
    assert result["uris"]["html"].startswith(
        f"file://{tmp_path}/out/compare/{result['compare_id']}/"
    )

    from prefect.artifacts import Artifact

    artifact = Artifact.get(f"compare-{result['compare_id']}")
    assert artifact is not None
    text = str(artifact.data)
    assert "| slice | last-week | tonight |" in text and "Recommendations side by side" in text


def test_compare_flow_reads_the_ledger_batches_write_unless_told(
    prefect_harness: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Its form shows the default that BatchRequest's shows, resolved in the flow run's process:
    the service's $TTSCALE_LEDGER, where every batch of the service writes."""
    shown = parameter_schema(ttscale_compare).model_dump_for_openapi()["properties"]
    assert f"${{{LEDGER_ENV}" in shown["ledger_path"]["default"]
    assert EMBEDDED_LEDGER in shown["ledger_path"]["default"]
    ledger = tmp_path / "service-ledger.sqlite"
    _two_runs(ledger)
    monkeypatch.setenv(LEDGER_ENV, str(ledger))
    result = ttscale_compare(output_uri=f"file://{tmp_path}/out")
    assert result["run_ids"] == ["last-week", "tonight"]
