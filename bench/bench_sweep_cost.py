"""What a run's sweeps cost: tokens generated against the largest unit's, read from its parts.

For each strategy kind of a finished run (its part objects under ``--output``), per item: the
tokens the engine generated for that kind's units (``CallRecord.generated_tokens``, each
generation counted once) over the attributed tokens of its largest-budget unit. Without the
sample cache a majority sweep 1,2,4,8 costs about 15/8 of majority@8; with it, about 1.0.
Budget forcing's largest unit is its largest B: with the cache a sweep costs that unit's
thinking plus the smaller budgets' forced answers.

    .venv/bin/python bench/bench_sweep_cost.py --output demo-out --run-id RUN_ID
"""

from __future__ import annotations

import argparse
from collections import defaultdict

from ttscale.records import UnitResult
from ttscale.service import ShardLayout, read_parts
from ttscale.storage import open_store


def sweep_costs(results: list[UnitResult]) -> dict[str, dict[str, float]]:
    """Per kind: calls, calls served from the cache, tokens generated, attributed, largest
    unit's attributed, and generated / largest."""
    # One record per unit (the last attempt written), as the ledger keeps one.
    units = {r.key: r for r in results}
    largest: dict[tuple[str, str], UnitResult] = {}
    for r in units.values():
        kind_item = (r.strategy, r.item_id)
        if kind_item not in largest or r.budget > largest[kind_item].budget:
            largest[kind_item] = r
    totals: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    for r in units.values():
        t = totals[r.strategy]
        t["calls"] += len(r.calls)
        t["cached"] += sum(c.cached for c in r.calls)
        t["generated"] += r.generated_tokens
        t["attributed"] += r.completion_tokens
    for (kind, _), r in largest.items():
        totals[kind]["largest"] += r.completion_tokens
    for t in totals.values():
        t["ratio"] = t["generated"] / max(t["largest"], 1)
    return {kind: dict(t) for kind, t in sorted(totals.items())}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--output", required=True, help="the run's output folder or URI")
    parser.add_argument("--run-id", required=True)
    args = parser.parse_args()
    store, prefix = open_store(args.output)
    shards_prefix = f"{prefix.rstrip('/')}/runs/{args.run_id}/shards/".lstrip("/")
    shard_names = sorted(
        {key[len(shards_prefix) :].split("/")[0] for key in store.list(shards_prefix)}
    )
    results = [
        r
        for name in shard_names
        for _, part in read_parts(store, ShardLayout(shards_prefix + name))
        for r in part
    ]
    header = f"{'kind':<16}{'calls':>7}{'cached':>8}{'generated':>11}{'attributed':>12}"
    print(header + f"{'largest unit':>14}{'generated/largest':>19}")
    for kind, t in sweep_costs(results).items():
        print(
            f"{kind:<16}{t['calls']:>7.0f}{t['cached']:>8.0f}{t['generated']:>11,.0f}"
            f"{t['attributed']:>12,.0f}{t['largest']:>14,.0f}{t['ratio']:>19.2f}"
        )


if __name__ == "__main__":
    main()
