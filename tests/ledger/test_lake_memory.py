"""What one ledger connection may hold in memory: bounded by default, set by the environment."""

from __future__ import annotations

from pathlib import Path

import pytest

from ttscale.errors import LedgerError
from ttscale.ledger import Ledger
from ttscale.ledger.lake import DEFAULT_MEMORY_LIMIT, MEMORY_LIMIT_ENV, connect_lake


def _settings(ledger: Path) -> tuple[str, str]:
    with connect_lake(ledger) as con:
        row = con.execute(
            "SELECT current_setting('memory_limit'), current_setting('temp_directory')"
        ).fetchone()
    assert row is not None
    return str(row[0]), str(row[1])


def test_the_default_limit_and_a_set_one(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    Ledger(tmp_path / "l.sqlite").close()
    monkeypatch.delenv(MEMORY_LIMIT_ENV, raising=False)
    limit, spill = _settings(tmp_path / "l.sqlite")
    assert DEFAULT_MEMORY_LIMIT == "2GB" and limit == "1.8 GiB"  # DuckDB prints 2 GB in GiB
    assert Path(spill).name.startswith("ttscale-duckdb-") and not Path(spill).is_relative_to(
        Path.cwd()
    )
    monkeypatch.setenv(MEMORY_LIMIT_ENV, "512MB")
    assert _settings(tmp_path / "l.sqlite")[0] == "488.2 MiB"


def test_a_bad_limit_is_one_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(MEMORY_LIMIT_ENV, "lots")
    with pytest.raises(LedgerError, match=f"{MEMORY_LIMIT_ENV}: .*Memory must have a number"):
        Ledger(tmp_path / "l.sqlite")
