"""``ttscale replay-probes``: where probe-and-stop would have stopped a stored run's traces."""

from __future__ import annotations

from collections import Counter
from typing import Annotated

import typer

from ttscale.cli.app import DEFAULT_LEDGER, LEDGER_HELP, app, guarded, print_rows


@app.command("replay-probes")
@guarded
def replay_probes_command(
    run_id: Annotated[str, typer.Argument(help="The run whose thinking traces are probed.")],
    strategy: Annotated[
        str, typer.Option(help="Unit whose traces are probed: budget_forcing or probe_stop.")
    ] = "budget_forcing",
    budget: Annotated[int, typer.Option(help="That unit's thinking budget B.")] = 256,
    probe_every: Annotated[int, typer.Option(help="Thinking tokens between probes.")] = 32,
    k: Annotated[int, typer.Option(help="Consecutive agreeing probes that stop.")] = 2,
    cap: Annotated[
        int | None, typer.Option(help="Thinking cap (default and at most: the budget).")
    ] = None,
    probe_max_tokens: Annotated[int, typer.Option(help="Most tokens of one probe.")] = 16,
    ledger: Annotated[str, typer.Option(help=LEDGER_HELP)] = DEFAULT_LEDGER,
    per_item: Annotated[bool, typer.Option(help="One row per item, not the summary.")] = False,
) -> None:
    """Probe an earlier run's stored thinking offline: cut it every --probe-every tokens, force
    the answer (probe generation only, with the run's engine), stop at --k agreeing probes.

    Example:

      ttscale replay-probes run-1a2b3c4d5e6f --strategy budget_forcing --budget 256 --k 3

      ttscale replay-probes run-1a2b3c4d5e6f --strategy probe_stop --budget 512 --per-item
    """
    from ttscale.service.probe_replay import replay_probes_from_ledger

    results = replay_probes_from_ledger(
        ledger, run_id, strategy, budget,
        probe_every=probe_every, k=k, cap=cap, probe_max_tokens=probe_max_tokens,
    )  # fmt: skip
    if per_item:
        names = ["item", "stop", "thinking", "probes", "probe_tokens", "answer", "correct", "error"]
        rows = [
            (
                r.item_id, None if r.stop_reason is None else str(r.stop_reason),
                r.thinking_tokens, len(r.probe_positions), r.probe_tokens, r.final_answer,
                r.correct, r.error,
            )
            for r in results
        ]  # fmt: skip
        print_rows(names, rows, "table")
        return
    done = [r for r in results if r.error is None]
    n = len(done) or 1
    names = ["items", "not replayable", "accuracy", "thinking_tokens", "probe_tokens", "stops"]
    stops = dict(Counter(str(r.stop_reason) for r in done))
    summary = [
        (
            len(done), len(results) - len(done), round(sum(r.correct for r in done) / n, 4),
            round(sum(r.thinking_tokens for r in done) / n, 1),
            round(sum(r.probe_tokens for r in done) / n, 1), stops,
        )
    ]  # fmt: skip
    print_rows(names, summary, "table")
