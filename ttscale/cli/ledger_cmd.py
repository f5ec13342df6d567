"""`ttscale ledger …`: work on the ledger itself (importing a pre-lake DuckDB file)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from ttscale.cli.app import DEFAULT_LEDGER, LEDGER_HELP, app, guarded, settings

ledger_app = typer.Typer(help="The ledger itself: import an old DuckDB file.", no_args_is_help=True)
app.add_typer(ledger_app, name="ledger")


@ledger_app.command("import")
@guarded
def import_command(
    old_file: Annotated[Path, typer.Argument(help="A ledger file from before the lake (.duckdb).")],
    ledger: Annotated[str, typer.Option(help=LEDGER_HELP)] = DEFAULT_LEDGER,
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
) -> None:
    """Copy the runs of an old single-file DuckDB ledger into the lake, checking the rows.

    Runs the lake already holds are skipped, so importing twice changes nothing. A file that is
    not a ttscale ledger exits 2 and the lake is not touched; a lake that cannot be opened or
    written exits 7.

    Examples:

      ttscale ledger import ttscale-out/ledger.duckdb

      ttscale ledger import old.duckdb --ledger "ducklake:postgres:dbname=ttscale_ledger host=pg data_path=s3://bucket/lake/"
    """
    from ttscale.ledger.importer import import_duckdb_ledger
    from ttscale.ledger.lake import parse_ledger

    result = import_duckdb_ledger(old_file, ledger)
    if as_json:
        typer.echo(json.dumps({
            "imported_runs": result.imported_runs, "skipped_runs": result.skipped_runs,
            "rows": result.rows, "ledger": parse_ledger(ledger).display,
        }))  # fmt: skip
        return
    rows = ", ".join(f"{n:,} {table}" for table, n in result.rows.items())
    settings.out_console().print(
        f"imported {len(result.imported_runs)} runs into {parse_ledger(ledger).display} "
        f"({rows}; rows per table and run checked); "
        f"{len(result.skipped_runs)} already there, skipped",
        highlight=False,
        soft_wrap=True,
    )
