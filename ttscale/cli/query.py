"""Commands that read the ledger: sql, report, runs (replay is in replay.py)."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from ttscale.cli.app import (
    DEFAULT_LEDGER,
    LEDGER_HELP,
    app,
    check_format,
    fail,
    guarded,
    print_rows,
    runs_app,
)
from ttscale.cli.report_flags import (
    GpuHour,
    Lambda,
    MinItems,
    PriceIn,
    PriceOut,
    Tau,
    report_options,
)


@app.command()
@guarded
def sql(
    query: Annotated[
        str | None, typer.Argument(help="One SQL statement (none with --schema).")
    ] = None,
    ledger: Annotated[str, typer.Option(help=LEDGER_HELP)] = DEFAULT_LEDGER,
    fmt: Annotated[
        str, typer.Option("--format", help="table, csv, json or parquet (needs --output).")
    ] = "table",
    output: Annotated[
        str | None, typer.Option(help="The Parquet file --format parquet writes.")
    ] = None,
    schema: Annotated[
        bool, typer.Option("--schema", help="Print every table and view: columns, types, what.")
    ] = False,
) -> None:
    """Query the ledger read-only: one SELECT-like statement, no file or network access.

    SELECT/WITH, SHOW, DESCRIBE, SUMMARIZE, EXPLAIN and reading PRAGMAs run; anything else
    (COPY, ATTACH, SET, INSTALL, several statements, read_csv of another file...) exits 2.
    The ledger holds every run: filter by one (`ttscale runs` lists them; the view latest_run
    names the newest). --format parquet writes the result to --output after the read-only
    query has returned (the query itself still cannot write files).

    Examples:

      ttscale sql --schema

      ttscale sql "SELECT strategy, budget, items, accuracy, mean_completion_tokens FROM accuracy_by_budget WHERE run_id = (SELECT run_id FROM latest_run) ORDER BY 1, 2"

      ttscale sql "SELECT * FROM cost_per_correct" --format parquet --output cost.parquet
    """
    from ttscale.ledger.sandbox import run_user_query

    if fmt != "parquet":
        check_format(fmt)
    if (fmt == "parquet") != (output is not None):
        raise fail("--format parquet needs --output FILE, and --output is only for parquet", 2)
    if schema:
        if query is not None:
            raise fail("give either --schema or a SQL statement, not both", 2)
        _print_schema(ledger, fmt, output)
        return
    if query is None:
        raise fail("give one SQL statement (or --schema)", 2)
    result = run_user_query(ledger, query)
    if output is not None:
        write_parquet(result.names, result.types, result.rows, output)
        typer.echo(f"{len(result.rows)} rows written to {output}")
    else:
        print_rows(result.names, result.rows, fmt)


def _print_schema(ledger: str, fmt: str, output: str | None) -> None:
    """Every table and view with its columns, types and one-line description."""
    from ttscale.ledger import Ledger
    from ttscale.ledger.schema_docs import ledger_objects

    with Ledger(ledger, read_only=True) as led:
        objects = ledger_objects(led)
    if fmt == "table":
        for obj in objects:
            typer.echo(f"{obj.name} ({obj.kind}): {obj.description}")
            width = max(len(name) for name, _ in obj.columns)
            for name, kind in obj.columns:
                typer.echo(f"    {name.ljust(width)}  {kind}")
            typer.echo("")
        return
    names = ["object", "kind", "column", "type", "description"]
    rows = [(o.name, o.kind, c, t, o.description) for o in objects for c, t in o.columns]
    if output is not None:
        write_parquet(names, ["VARCHAR"] * len(names), rows, output)
        typer.echo(f"{len(rows)} rows written to {output}")
    else:
        print_rows(names, rows, fmt)


def write_parquet(names: list[str], types: list[str], rows: list[Any], output: str) -> None:
    """Write a result to a Parquet file with a plain in-memory DuckDB (no pyarrow), keeping
    each column's type; duplicate column names get a suffix (Parquet needs unique ones)."""
    import duckdb

    unique: list[str] = []
    for name in names:
        candidate, n = name, 1
        while candidate in unique:
            n += 1
            candidate = f"{name}_{n}"
        unique.append(candidate)
    columns = ", ".join(f"{_ident(n)} {t}" for n, t in zip(unique, types, strict=True))
    con = duckdb.connect()
    try:
        con.execute(f"CREATE TABLE result ({columns})")
        if rows:
            marks = ", ".join("?" for _ in names)
            con.executemany(f"INSERT INTO result VALUES ({marks})", [list(r) for r in rows])
        con.execute(f"COPY result TO '{output.replace(chr(39), chr(39) * 2)}' (FORMAT parquet)")
    except duckdb.Error as exc:
        raise fail(f"cannot write {output}: {str(exc).splitlines()[0]}", 2) from None
    finally:
        con.close()


def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


@app.command()
@guarded
def report(
    run_id: Annotated[str, typer.Argument(help="The run to report on.")],
    ledger: Annotated[str, typer.Option(help=LEDGER_HELP)] = DEFAULT_LEDGER,
    out: Annotated[
        str | None,
        typer.Option(help="Output root (default: the run's own output_uri)."),
    ] = None,
    price_in: PriceIn = None,
    price_out: PriceOut = None,
    gpu_hour: GpuHour = None,
    tau: Tau = None,
    lambda_: Lambda = None,
    min_items: MinItems = None,
) -> None:
    """Regenerate a run's report from the ledger, where a batch writes it.

    The report goes to OUT/runs/RUN_ID/report/report.{json,md,html}, the same layout a batch uses,
    with the run's policy.json beside it, and its figures replace the run's in the ledger
    (report_curve_points, report_recommendations...). Prices, τ and λ stored with the run are used unless a
    flag overrides them.

    Example:

      ttscale report run-1a2b3c4d5e6f --out s3://bucket/ttscale
    """
    from ttscale.ledger import Ledger
    from ttscale.ledger.report_data import (
        build_report_from_ledger,
        report_settings,
        stored_report_options,
    )
    from ttscale.reports.publish import publish_report
    from ttscale.service import RunLayout
    from ttscale.storage import open_store

    flags = report_options(price_in, price_out, gpu_hour, tau, lambda_, min_items)
    with Ledger(ledger, read_only=True) as led:
        settings_ = report_settings(stored_report_options(led.con, run_id), flags)
        built = build_report_from_ledger(led.con, run_id, settings_)
    root = out or built.run.request.get("output_uri") or "file://ttscale-out"
    store, prefix = open_store(root)
    target = RunLayout.of(prefix, run_id).report
    for kind, uri in publish_report(built, store, target).items():
        typer.echo(f"report ({kind}): {uri}")
    # The ledger's figures are those of the run's latest published report.
    with Ledger(ledger) as led:
        led.record_report(built)


RUN_COLUMNS = (
    "run_id, status, strftime(started_at, '%Y-%m-%d %H:%M:%S') AS started, duration_s, items, "
    "units, tokens, round(sweep_saving, 2) AS saving, round(accuracy, 4) AS accuracy"
)


@runs_app.callback(invoke_without_command=True)
@guarded
def runs(
    ctx: typer.Context,
    ledger: Annotated[str, typer.Option(help=LEDGER_HELP)] = DEFAULT_LEDGER,
    fmt: Annotated[str, typer.Option("--format", help="table, csv or json.")] = "table",
) -> None:
    """One line per run in the ledger: id, status, start, duration, items, tokens, saving,
    accuracy, model.

    saving is the units' attributed tokens over the tokens generated (samples shared
    between units by the sample cache are generated once).

    Examples:

      ttscale runs

      ttscale runs show run-1a2b3c4d5e6f
    """
    if ctx.invoked_subcommand is not None:
        return
    from ttscale.ledger import Ledger

    check_format(fmt)
    with Ledger(ledger, read_only=True) as led:
        names, rows = led.query(
            f"SELECT {RUN_COLUMNS}, coalesce(model, engine) AS model FROM run_summary "
            "ORDER BY started_at DESC"
        )
    rows = [_rounded(row) for row in rows]
    if fmt != "table":
        print_rows(names, rows, fmt)
        return
    from rich.table import Table

    from ttscale.cli.app import settings

    # A run id is what users copy from here: never wrapped or cut; the other columns give way.
    table = Table()
    for index, name in enumerate(names):
        whole = max([len(str(row[0])) for row in rows] + [len(name)]) if index == 0 else None
        table.add_column(name, no_wrap=index == 0, min_width=whole)
    for row in rows:
        table.add_row(*("" if v is None else str(v) for v in row))
    settings.out_console().print(table)


@runs_app.command("show")
@guarded
def runs_show(
    run_id: Annotated[str, typer.Argument(help="The run to show.")],
    ledger: Annotated[str, typer.Option(help=LEDGER_HELP)] = DEFAULT_LEDGER,
) -> None:
    """One run: its summary, request, versions, and accuracy and tokens per strategy × budget."""
    import json

    from ttscale.ledger import Ledger

    with Ledger(ledger, read_only=True) as led:
        names, rows = led.query("SELECT * FROM run_summary WHERE run_id = ?", [run_id])
        if not rows:
            raise fail(f"no run {run_id!r} in {ledger}", 2)
        for name, value in zip(names, _rounded(rows[0]), strict=True):
            typer.echo(f"{name}: {'' if value is None else value}")
        _, meta = led.query(
            "SELECT request_json, versions_json FROM runs WHERE run_id = ?", [run_id]
        )
        typer.echo("request: " + json.dumps(json.loads(meta[0][0]), sort_keys=True))
        typer.echo("versions: " + json.dumps(json.loads(meta[0][1]), sort_keys=True))
        names, rows = led.query(
            "SELECT dataset, language, strategy, budget, items, round(accuracy, 4) AS accuracy, "
            "round(mean_completion_tokens, 1) AS tokens_per_item FROM cost_accuracy "
            "WHERE run_id = ? ORDER BY ALL",
            [run_id],
        )
    print_rows(names, rows, "table")


def _rounded(row: tuple[Any, ...]) -> tuple[Any, ...]:
    return tuple(round(v, 4) if isinstance(v, float) else v for v in row)
