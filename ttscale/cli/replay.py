"""``ttscale replay``: a strategy replayed on the samples of a run in the ledger (no engine)."""

from __future__ import annotations

from typing import Annotated

import typer

from ttscale.cli.app import (
    DEFAULT_LEDGER,
    LEDGER_HELP,
    app,
    check_format,
    fail,
    guarded,
    print_rows,
)

REPLAY_COLUMNS = [
    "strategy",
    "budget",
    "items",
    "accuracy",
    "tokens_per_item",
    "samples_used",
    "stop_reasons",
]


@app.command("replay")
@guarded
def replay_command(
    run_id: Annotated[str, typer.Argument(help="The run whose samples form the pool.")],
    strategy: Annotated[
        str,
        typer.Option(
            help="The strategy as KIND:key=value,... (as in ttscale run) or as JSON; "
            "its budgets are replayed."
        ),
    ],
    ledger: Annotated[str, typer.Option(help=LEDGER_HELP)] = DEFAULT_LEDGER,
    pool_strategy: Annotated[
        str, typer.Option(help="Unit whose samples form the pool.")
    ] = "majority",
    pool_budget: Annotated[
        int | None, typer.Option(help="That unit's N (default: its largest).")
    ] = None,
    order: Annotated[str, typer.Option(help="recorded or permutation.")] = "recorded",
    seed: Annotated[int, typer.Option(help="Permutation seed.")] = 0,
    fmt: Annotated[str, typer.Option("--format", help="table, csv or json.")] = "table",
) -> None:
    """Replay a strategy on an earlier run's samples: no engine, no new GPU time.

    The run may be an imported pool (`ttscale pool import`): where its answers are the other
    tool's own, strategies vote on those; scorer kind `stored` serves the pool's stored scores.

    Examples:

      ttscale replay run-1a2b3c4d5e6f --strategy esc:n=4,8,window=2

      ttscale replay run-1a2b3c4d5e6f --strategy '{"kind": "adaptive_consistency", "n": [8]}'

      ttscale replay pool-0123456789ab --strategy best_of_n:n=4,8,scorer.kind=stored --format csv
    """
    from collections import Counter

    from pydantic import TypeAdapter

    from ttscale.errors import ConfigError
    from ttscale.ledger import Ledger
    from ttscale.ledger.calibration import calibrated
    from ttscale.ledger.readers import sample_pool_rows
    from ttscale.pools.writer import imported_pool
    from ttscale.strategies.config import StrategyConfig
    from ttscale.strategies.replay import SamplePool, replay

    check_format(fmt)
    if order not in ("recorded", "permutation"):
        raise fail(f"--order must be recorded or permutation, not {order!r}", 2)
    adapter = TypeAdapter(StrategyConfig)
    if strategy.lstrip().startswith("{"):
        config = adapter.validate_json(strategy)
    else:
        from ttscale.cli.specs import parse_strategy

        config = adapter.validate_python(parse_strategy(strategy))
    with Ledger(ledger, read_only=True) as led:
        imported, answers_stored = imported_pool(led, run_id)
        try:
            config = calibrated(config, led)  # a verifier gate's calibration run, if it names one
            rows = sample_pool_rows(led, run_id, pool_strategy, pool_budget)
        except (ValueError, ConfigError) as exc:
            raise fail(str(exc), 2) from None
    pool = SamplePool.from_rows(run_id, rows, answers_stored=answers_stored, imported=imported)
    table = []
    for budget in config.budgets():
        try:
            results = replay(config, pool, budget, order, seed)  # type: ignore[arg-type]
        except ValueError as exc:
            raise fail(str(exc), 2) from None
        n = len(results)
        reasons = Counter(r.stop_reason for r in results)
        table.append((
            config.kind, budget, n, round(sum(r.correct for r in results) / n, 4),
            round(sum(r.completion_tokens for r in results) / n, 1),
            round(sum(r.samples_used for r in results) / n, 2), dict(reasons),
        ))  # fmt: skip
    print_rows(REPLAY_COLUMNS, table, fmt)
