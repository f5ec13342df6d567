"""`ttscale ledger …`: work on the ledger itself (importing a pre-lake DuckDB file, compacting)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from ttscale.cli.app import DEFAULT_LEDGER, LEDGER_HELP, app, guarded, settings

ledger_app = typer.Typer(
    help="The ledger itself: import an old DuckDB file, compact the lake.", no_args_is_help=True
)
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


@ledger_app.command("compact")
@guarded
def compact_command(
    ledger: Annotated[str, typer.Option(help=LEDGER_HELP)] = DEFAULT_LEDGER,
    keep: Annotated[
        str,
        typer.Option(
            help="How long replaced files and old snapshots stay for readers and time travel "
            "(e.g. 7d, 12h, 30m; 0 frees the space now, for a ledger nobody is using)."
        ),
    ] = "7d",
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
) -> None:
    """Merge the lake's small Parquet files and delete what no reader needs any more.

    Every ingest adds its own files and snapshot, and DuckLake deletes nothing by itself. This
    merges small files and rewrites files with many deleted rows (the rows, and every query,
    stay the same), expires snapshots older than --keep, and deletes files replaced more than
    --keep ago, and files no snapshot knows (left by a killed writer) once older than --keep and
    a day. Safe while batches run with the default --keep: each step commits alone and is retried
    on a conflict with an ingest. A lake that cannot be opened or written exits 7; a bad --keep
    exits 2.

    Examples:

      ttscale ledger compact --ledger ttscale-out/ledger.sqlite

      ttscale ledger compact --keep 0 --json
    """
    from ttscale.ledger.lake import parse_ledger
    from ttscale.ledger.maintenance import compact_ledger, parse_keep

    result = compact_ledger(ledger, parse_keep(keep))
    if as_json:
        typer.echo(json.dumps(result.to_json() | {"ledger": parse_ledger(ledger).display}))
        return
    before, after = result.before, result.after
    settings.out_console().print(
        f"compacted {parse_ledger(ledger).display}: {before.data_files:,} data files "
        f"({before.data_bytes / 2**20:,.1f} MiB) and {before.delete_files:,} delete files → "
        f"{after.data_files:,} ({after.data_bytes / 2**20:,.1f} MiB) and {after.delete_files:,}; "
        f"{result.snapshots_expired:,} snapshots expired; {result.files_deleted:,} files deleted, "
        f"{result.files_kept:,} replaced files kept for readers (--keep {keep})",
        highlight=False,
        soft_wrap=True,
    )
