"""`ttscale policy`: print a run's recommendations as its serving policy (policy.json)."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from ttscale.cli.app import DEFAULT_LEDGER, LEDGER_HELP, app, guarded


@app.command()
@guarded
def policy(
    run_id: Annotated[str, typer.Argument(help="The run whose policy to print.")],
    ledger: Annotated[str, typer.Option(help=LEDGER_HELP)] = DEFAULT_LEDGER,
) -> None:
    """Print the run's policy.json: per slice the strategy, budget and settings to serve with.

    Built from the ledger with the prices and cutoffs stored with the run, as the run published
    it next to report.json. An unknown run exits 2.

    Example:

      ttscale policy run-1a2b3c4d5e6f --ledger ttscale-out/ledger.sqlite
    """
    from ttscale.ledger import Ledger
    from ttscale.ledger.report_data import build_report_from_ledger
    from ttscale.reports.policy import build_policy

    with Ledger(ledger, read_only=True) as led:
        built = build_report_from_ledger(led.con, run_id)
    typer.echo(json.dumps(build_policy(built), indent=2, ensure_ascii=False))
