"""``make demo``: the main job on embedded defaults (bundled questions, the embedded model)."""

from __future__ import annotations

import time
from importlib.resources import files

from ttscale.cli.app import guarded, settings
from ttscale.cli.run import execute, print_results
from ttscale.schemas import BatchRequest
from ttscale.strategies.config import BudgetForcingConfig, MajorityConfig
from ttscale.strategies.defaults import recommended_adaptive

DEMO_OUTPUT = "demo-out"
DEMO_SAMPLE_TOKENS = 192


def demo_request() -> BatchRequest:
    """24 bundled questions; majority with N ∈ {1, 2, 4, 8}; the recommended adaptive default
    (N_max 8); budget forcing with B ∈ {32, 64, 128}.

    The recommended default samples with majority's settings, so the run's sample cache serves it
    majority's samples: it shows its saving at almost no extra generation.
    """
    return BatchRequest(
        input_uri=str(files("ttscale") / "data" / "demo.jsonl"),
        output_uri=f"file://{DEMO_OUTPUT}",
        ledger_path=f"{DEMO_OUTPUT}/ledger.sqlite",
        strategies=[
            MajorityConfig(n=[1, 2, 4, 8], max_tokens=DEMO_SAMPLE_TOKENS),
            recommended_adaptive(8, max_tokens=DEMO_SAMPLE_TOKENS),
            BudgetForcingConfig(budgets_tokens=[32, 64, 128]),
        ],
        seed=0,
    )


def main(request: BatchRequest | None = None) -> None:
    """Run the demo batch (or ``request``) the way ``ttscale run`` does, then show what to try."""
    started = time.monotonic()
    request = request or demo_request()
    result = guarded(execute)(request)
    print_results(result)
    out = settings.out_console()
    out.print(f"log: {result['log']}" if "log" in result else "", highlight=False, soft_wrap=True)
    run_id, ledger = result["run_id"], request.ledger_path
    out.print(
        f"\ndemo finished in {time.monotonic() - started:.0f} s. Try:\n"
        f"  .venv/bin/ttscale runs --ledger {ledger}\n"
        f'  .venv/bin/ttscale sql --ledger {ledger} "SELECT strategy, budget, items, '
        "round(accuracy, 3) AS accuracy, round(mean_completion_tokens) AS tokens_per_item "
        f"FROM cost_accuracy WHERE run_id = '{run_id}' ORDER BY strategy, budget\"",
        highlight=False,
        soft_wrap=True,
    )
