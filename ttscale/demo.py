"""``make demo``: the main job on embedded defaults (bundled questions, the embedded model)."""

from __future__ import annotations

import time
from importlib.resources import files

from ttscale.schemas import BatchRequest
from ttscale.strategies.config import BudgetForcingConfig, MajorityConfig

DEMO_OUTPUT = "demo-out"


def demo_request() -> BatchRequest:
    """24 bundled questions; majority with N ∈ {1, 2, 4, 8}; budget forcing with B ∈ {32, 64, 128}."""
    return BatchRequest(
        input_uri=str(files("ttscale") / "data" / "demo.jsonl"),
        output_uri=f"file://{DEMO_OUTPUT}",
        ledger_path=f"{DEMO_OUTPUT}/ledger.duckdb",
        strategies=[
            MajorityConfig(n=[1, 2, 4, 8], max_tokens=192),
            BudgetForcingConfig(budgets_tokens=[32, 64, 128]),
        ],
        seed=0,
    )


def main() -> None:
    from ttscale.cli import print_summary, run_with_progress

    started = time.monotonic()
    request = demo_request()
    result = run_with_progress(request)
    print()
    print_summary(result)
    ledger = request.ledger_path
    print(f"\ndemo finished in {time.monotonic() - started:.0f} s. Try:\n")
    print(
        f'  .venv/bin/ttscale sql --ledger {ledger} "SELECT strategy, budget, count(*) AS items, '
        "round(avg(correct::INT), 3) AS accuracy, round(avg(completion_tokens)) AS tokens_per_item "
        'FROM item_decisions GROUP BY ALL ORDER BY strategy, budget"'
    )
    print(
        f'  .venv/bin/ttscale sql --ledger {ledger} "SELECT item_id, strategy, budget, '
        "final_answer, correct, stop_reason, completion_tokens FROM item_decisions "
        "WHERE strategy = 'budget_forcing' ORDER BY item_id, budget LIMIT 12\""
    )


if __name__ == "__main__":
    main()
