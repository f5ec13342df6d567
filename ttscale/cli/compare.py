"""`ttscale compare`: several runs' curves overlaid and their recommendations side by side."""

from __future__ import annotations

from typing import Annotated

import typer

from ttscale.cli.app import DEFAULT_LEDGER, LEDGER_HELP, app, guarded


@app.command()
@guarded
def compare(
    run_ids: Annotated[list[str], typer.Argument(help="Two or more runs of the ledger.")],
    ledger: Annotated[str, typer.Option(help=LEDGER_HELP)] = DEFAULT_LEDGER,
    output: Annotated[
        str | None,
        typer.Option(
            help="Output root; the comparison goes to OUTPUT/compare/<id>/ "
            "(default: the first run's own output, else file://ttscale-out)."
        ),
    ] = None,
) -> None:
    """Compare runs: one report (HTML, Markdown, JSON) overlaying their cost–accuracy curves per
    slice, their recommendations side by side, and, for a dataset in several languages, a row
    per language with the gap to English at each budget.

    Each run's figures are its own report's (its stored prices and cutoffs). An unknown run
    exits 2.

    Example:

      ttscale compare run-1a2b3c4d5e6f run-6f5e4d3c2b1a --ledger ttscale-out/ledger.duckdb
    """
    from ttscale.service.compare import compare_runs

    published = compare_runs(run_ids, ledger, output)
    typer.echo(published.side_by_side_markdown())
    for kind, uri in published.uris.items():
        typer.echo(f"comparison ({kind}): {uri}")
