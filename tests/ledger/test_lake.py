"""The ledger setting and how the lake is opened: URIs, packaged extensions, old files refused."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pytest

from ttscale.errors import LedgerError
from ttscale.ledger import Ledger
from ttscale.ledger.lake import (
    _creating_race,
    attach_script,
    connect_lake,
    extension_file,
    is_transient,
    parse_ledger,
)


def test_a_plain_path_is_a_sqlite_catalog_with_its_data_beside_it(tmp_path: Path) -> None:
    spec = parse_ledger(tmp_path / "ledger.sqlite")
    assert spec.catalog == f"sqlite:{tmp_path}/ledger.sqlite"
    assert spec.data_path == f"{tmp_path}/ledger.sqlite.files/"
    assert spec.uri == f"ducklake:sqlite:{tmp_path}/ledger.sqlite"
    assert parse_ledger(spec.uri) == spec  # the URI opens the same lake again


def test_data_path_is_the_last_word_and_made_absolute(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    spec = parse_ledger("ducklake:sqlite:cat dir/l.sqlite data_path=data")
    assert spec.catalog == f"sqlite:{tmp_path}/cat dir/l.sqlite"
    assert spec.data_path == f"{tmp_path}/data/"
    assert parse_ledger(spec.uri) == spec
    pg = parse_ledger("ducklake:postgres:dbname=l host=db password=s3cret data_path=s3://b/lake")
    assert (pg.kind, pg.catalog_file, pg.data_path) == ("postgres", None, "s3://b/lake/")
    assert "s3cret" not in pg.display and "password=***" in pg.display


@pytest.mark.parametrize("bad", ["s3://bucket/ledger", "ducklake:mysql:db=x", "ducklake:sqlite:"])
def test_a_setting_that_names_no_lake_is_a_ledger_error(bad: str) -> None:
    with pytest.raises(LedgerError):
        parse_ledger(bad)


def test_an_in_memory_ledger_is_refused_rather_than_written_to_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(LedgerError, match="cannot be in memory"):
        Ledger(":memory:")
    assert list(tmp_path.iterdir()) == []


def test_extensions_load_from_their_packages_with_unsigned_extensions_off(tmp_path: Path) -> None:
    for name in ("ducklake", "sqlite_scanner", "postgres_scanner", "httpfs"):
        path = extension_file(name)
        assert path is not None and path.is_file(), name
    with connect_lake(tmp_path / "l.sqlite") as con:
        assert con.execute("SELECT current_setting('allow_unsigned_extensions')").fetchone() == (
            False,
        )
        loaded = con.execute(
            "SELECT extension_name FROM duckdb_extensions() WHERE loaded"
        ).fetchall()
        assert {"ducklake", "sqlite_scanner"} <= {r[0] for r in loaded}


def test_attach_script_is_what_a_plain_duckdb_user_runs(tmp_path: Path) -> None:
    Ledger(tmp_path / "l.sqlite").close()
    with duckdb.connect() as con:
        for line in attach_script(tmp_path / "l.sqlite").splitlines():
            con.execute(line)
        assert con.execute("SELECT count(*) FROM run_summary").fetchone() == (0,)


def test_a_duckdb_file_from_before_the_lake_is_refused(tmp_path: Path) -> None:
    old = tmp_path / "ledger.duckdb"
    duckdb.connect(str(old)).close()
    with pytest.raises(LedgerError, match="from before the lake"):
        Ledger(old)


def test_only_busy_and_conflict_errors_are_retried() -> None:
    assert is_transient(duckdb.IOException("database is locked"))
    assert is_transient(LedgerError("ingest failed: Transaction conflict on commit"))
    assert not is_transient(duckdb.CatalogException("Table with name x does not exist"))
    assert not is_transient(ValueError("database is locked"))


def test_attaching_a_lake_another_process_is_creating_is_retried() -> None:
    # What the loser of two processes creating one Postgres catalog at once was answered in CI.
    race = duckdb.Error(
        'Failed to initialize DuckLake: Failed to execute query "CREATE TABLE '
        '"public"."ducklake_metadata"(...)": ERROR:  relation "ducklake_metadata" already exists'
    )
    assert _creating_race(race) and not is_transient(race)
    assert _creating_race(duckdb.IOException("database is locked"))
    # Outside a lake's creation, "already exists" is a real error, not a race.
    assert not _creating_race(duckdb.CatalogException("Table with name x already exists"))
