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
    against: Annotated[
        str | None,
        typer.Option(help="Print the diff of this run's policy against the given earlier run's."),
    ] = None,
    previous: Annotated[
        bool,
        typer.Option(
            "--previous",
            help="Print the diff against the previous completed run with the same input and "
            "strategies in the ledger.",
        ),
    ] = False,
) -> None:
    """Print the run's policy.json: per slice the strategy, budget and settings to serve with.

    Built from the ledger with the prices and cutoffs stored with the run, as the run published
    it next to report.json. An unknown run exits 2.

    With --against RUN or --previous it prints, as JSON, what changed per slice instead
    (strategy, budget, accuracy outside the earlier CI, tokens or $ per item by over 20 %,
    slices newly withheld or recommended, added or removed).

    Example:

      ttscale policy run-1a2b3c4d5e6f --ledger ttscale-out/ledger.sqlite
      ttscale policy run-1a2b3c4d5e6f --previous
    """
    if against is not None or previous:
        from ttscale.errors import ConfigError
        from ttscale.service.policy_changes import policy_changes, policy_diff_between

        if against is not None and previous:
            raise ConfigError("give --against RUN_ID or --previous, not both")
        diff = (
            policy_diff_between(ledger, run_id, against).as_json()
            if against is not None
            else policy_changes(ledger, run_id).as_json()
        )
        typer.echo(json.dumps(diff, indent=2, ensure_ascii=False))
        return
    from ttscale.ledger import Ledger
    from ttscale.ledger.report_data import build_report_from_ledger
    from ttscale.reports.policy import build_policy

    with Ledger(ledger, read_only=True) as led:
        built = build_report_from_ledger(led.con, run_id)
    typer.echo(json.dumps(build_policy(built), indent=2, ensure_ascii=False))
