"""`ttscale ledger import old.duckdb`: a real pre-lake file into a real lake, as a user runs it.

The old files are built with the old schema (``old_ledger.py``); the command runs as a
subprocess; the lake is read back with ``Ledger``, and the old file with plain DuckDB.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest
from old_ledger import build_old_ledger, table_counts

from ttscale.ledger import Ledger

REPO = Path(__file__).resolve().parents[2]
TOKENS_SQL = (
    "SELECT run_id, count(*), sum(completion_tokens), sum(thinking_tokens) "
    'FROM "{catalog}".main.generation_calls GROUP BY run_id ORDER BY run_id'
)


def ledger_import(old: Path, ledger: Path | str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "ttscale.cli", "ledger", "import", str(old), "--ledger",
         str(ledger), "--json"],
        cwd=cwd, env=os.environ | {"PYTHONPATH": str(REPO)}, capture_output=True, text=True,
        timeout=300,
    )  # fmt: skip


def old_figures(old: Path) -> tuple[dict[str, int], list[tuple]]:
    with duckdb.connect(str(old), read_only=True) as con:
        catalog = con.execute("SELECT current_database()").fetchone()[0]  # type: ignore[index]
        return table_counts(con, catalog), con.execute(
            TOKENS_SQL.format(catalog=catalog)
        ).fetchall()


def lake_figures(ledger: Path | str) -> tuple[dict[str, int], list[tuple]]:
    with Ledger(ledger, read_only=True) as lake:
        return table_counts(lake.con, "lake"), lake.con.execute(
            TOKENS_SQL.format(catalog="lake")
        ).fetchall()


def snapshots(ledger: Path) -> int:
    with Ledger(ledger, read_only=True) as lake:
        return int(lake.con.execute("SELECT count(*) FROM lake.snapshots()").fetchone()[0])  # type: ignore[index]


def assert_one_line_error(result: subprocess.CompletedProcess, code: int, *words: str) -> None:
    output = (result.stdout + result.stderr).strip()
    assert result.returncode == code, output
    assert len(output.splitlines()) == 1 and "Traceback" not in output, output
    for word in words:
        assert word in output, output


@pytest.mark.parametrize("version", [3, 1])
def test_import_copies_every_row_and_twice_changes_nothing(tmp_path: Path, version: int) -> None:
    old = build_old_ledger(tmp_path / "old.duckdb", ["r1", "r2"], version=version)
    ledger = tmp_path / "lake" / "ledger.sqlite"
    result = ledger_import(old, ledger, tmp_path)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["imported_runs"] == ["r1", "r2"] and report["skipped_runs"] == []
    counts, tokens = old_figures(old)
    assert report["rows"] == counts
    assert lake_figures(ledger) == (counts, tokens)
    with Ledger(ledger, read_only=True) as lake:
        # Decoded once: a JSON object, whether the old writer encoded it once or twice.
        kinds = lake.con.execute(
            "SELECT DISTINCT json_type(detail_json) FROM item_decisions"
        ).fetchall()
        assert kinds == [("OBJECT",)]
        statuses = lake.con.execute("SELECT DISTINCT status FROM runs").fetchall()
        assert statuses == [("completed" if version >= 3 else None,)]

    before = snapshots(ledger)
    again = ledger_import(old, ledger, tmp_path)
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout)["imported_runs"] == []
    assert json.loads(again.stdout)["skipped_runs"] == ["r1", "r2"]
    assert lake_figures(ledger) == (counts, tokens)
    assert snapshots(ledger) - before <= 1  # at most the lock row's bump, no data


def test_import_adds_only_the_runs_the_lake_lacks(tmp_path: Path) -> None:
    ledger = tmp_path / "ledger.sqlite"
    first = build_old_ledger(tmp_path / "first.duckdb", ["r1"])
    assert ledger_import(first, ledger, tmp_path).returncode == 0
    both = build_old_ledger(tmp_path / "both.duckdb", ["r1", "r2"])
    result = ledger_import(both, ledger, tmp_path)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["imported_runs"] == ["r2"]
    assert lake_figures(ledger) == old_figures(both)


def test_a_corrupt_file_exits_2_and_writes_nothing(tmp_path: Path) -> None:
    good = build_old_ledger(tmp_path / "good.duckdb", ["r1"])
    truncated = tmp_path / "truncated.duckdb"
    truncated.write_bytes(good.read_bytes()[: 4096 * 3])  # header kept, blocks cut off
    garbage = tmp_path / "garbage.duckdb"
    garbage.write_bytes(b"\0" * 8 + b"DUCK" + os.urandom(20000))
    text = tmp_path / "notes.duckdb"
    text.write_text("not a database\n")
    # A file whose header and catalog are fine, with one data block overwritten.
    damaged = build_old_ledger(tmp_path / "damaged.duckdb", ["r1"])
    with duckdb.connect(str(damaged)) as con:
        con.execute(
            "INSERT INTO items SELECT 'r1', 'x' || range, 'd', 'en', md5(range::VARCHAR), '1', "
            "NULL FROM range(300000)"
        )
    data = bytearray(damaged.read_bytes())
    data[len(data) // 2 : len(data) // 2 + 4096] = b"\xff" * 4096
    damaged.write_bytes(bytes(data))
    ledger = tmp_path / "lake" / "ledger.sqlite"
    for bad, words in (
        (damaged, "checksum"),
        (truncated, "corrupt or unreadable"),
        (garbage, "corrupt or unreadable"),
        (text, "not a DuckDB file"),
        (tmp_path / "missing.duckdb", "no such file"),
    ):
        assert_one_line_error(ledger_import(bad, ledger, tmp_path), 2, str(bad.name), words)
        assert not ledger.parent.exists()  # no lake was created


def test_a_foreign_duckdb_file_exits_2_and_leaves_the_lake_as_it_was(tmp_path: Path) -> None:
    ledger = tmp_path / "ledger.sqlite"
    assert (
        ledger_import(build_old_ledger(tmp_path / "o.duckdb", ["r1"]), ledger, tmp_path).returncode
        == 0
    )
    figures, before = lake_figures(ledger), snapshots(ledger)
    foreign = tmp_path / "sales.duckdb"
    with duckdb.connect(str(foreign)) as con:
        con.execute("CREATE TABLE orders (id INTEGER, run_id VARCHAR)")
        con.execute("INSERT INTO orders VALUES (1, 'r9')")
    result = ledger_import(foreign, ledger, tmp_path)
    assert_one_line_error(result, 2, "not a ttscale ledger", "no table runs", "orders")
    # A ledger-like file that lacks a column the format always had.
    partial = build_old_ledger(tmp_path / "partial.duckdb", ["r2"])
    with duckdb.connect(str(partial)) as con:
        con.execute("ALTER TABLE input_errors DROP COLUMN reason")
    result = ledger_import(partial, ledger, tmp_path)
    assert_one_line_error(result, 2, "table input_errors has no column reason")
    assert (lake_figures(ledger), snapshots(ledger)) == (figures, before)


def test_a_lake_that_cannot_be_opened_exits_7(tmp_path: Path) -> None:
    old = build_old_ledger(tmp_path / "old.duckdb", ["r1"])
    blocker = tmp_path / "file"
    blocker.write_text("")
    assert_one_line_error(ledger_import(old, blocker / "ledger.sqlite", tmp_path), 7, "ledger")
