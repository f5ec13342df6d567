"""Thinking efficiency: probe-and-stop and confidence stop against budget forcing, measured side
by side in one run.

Runs budget forcing at every budget B of ``--budgets``, ``probe_stop`` capped at the largest B
(for each k of ``--k``) and ``confidence_stop`` capped there too (for each starting threshold of
``--confidence-start``) on the same items and the same engine, all units concurrently, and
prints per setting: accuracy, thinking tokens, probe tokens and all completion tokens per item,
and how thinking ended. Then, per adaptive setting, the comparison with budget forcing at its
largest budget and at the smallest budget whose accuracy is at least the setting's ("equal
accuracy"): token ratios (budget forcing ÷ adaptive) and the accuracy difference.

    # the embedded SmolLM2 on vLLM (CPU: a few minutes for 12 items)
    .venv/bin/python bench/bench_thinking_efficiency.py --items 12
    # no model: the scripted engine's "settling" trace (synthetic figures, a check of the wiring)
    .venv/bin/python bench/bench_thinking_efficiency.py --engine scripted --items 12

Figures from the scripted engine are synthetic; from SmolLM2-135M they say little about a real
reasoning model, whose traces are long enough for a probe interval to matter.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from collections import Counter
from importlib.resources import files
from typing import Any

from ttscale.strategies.kinds.budget_forcing import BudgetForcingConfig
from ttscale.strategies.kinds.confidence_stop import ConfidenceStopConfig
from ttscale.strategies.kinds.probe_stop import ProbeStopConfig


def _tokens(record: dict[str, Any], phase: str | None = None) -> int:
    return sum(
        c["completion_tokens"] for c in record["calls"] if phase is None or c["phase"] == phase
    )


def summarise(label: str, records: list[dict[str, Any]]) -> dict[str, Any]:
    errors = [r["error"] for r in records if r["error"]]
    if errors:
        raise SystemExit(f"{label}: {len(errors)} units failed, first: {errors[0]}")
    return {
        "label": label,
        "accuracy": statistics.mean(bool(r["correct"]) for r in records),
        "thinking": statistics.mean(
            _tokens(r, "thinking") + _tokens(r, "extension") for r in records
        ),
        "probe": statistics.mean(_tokens(r, "probe") for r in records),
        "total": statistics.mean(_tokens(r) for r in records),
        "stops": dict(Counter(r["stop_reason"] for r in records)),
    }


async def run_all(
    engine_kind: str, questions: list[Any], configs: list[tuple[str, Any, int]], seed: int
) -> dict[str, list[dict[str, Any]]]:
    from ttscale.engines import ScriptedEngineConfig, VLLMEngineConfig, create_engine
    from ttscale.prompts import resolve_profile
    from ttscale.runner import Unit, attempt_unit

    if engine_kind == "scripted":
        engine = await create_engine(ScriptedEngineConfig(script="settling", accuracy=0.8))
        profile = resolve_profile("plain", "scripted")
    else:
        engine = await create_engine(VLLMEngineConfig())
        profile = resolve_profile("auto", "smollm2")
    try:
        jobs = [(label, q, Unit(c.kind, b, c)) for label, c, b in configs for q in questions]
        results = await asyncio.gather(
            *(attempt_unit(engine, profile, q, unit, "bench", seed) for _, q, unit in jobs)
        )
        records = [result.to_json() for result in results]
    finally:
        await engine.close()
    grouped: dict[str, list[dict[str, Any]]] = {label: [] for label, _, _ in configs}
    for (label, _, _), record in zip(jobs, records, strict=True):
        grouped[label].append(record)
    return grouped


def compare(probe: dict[str, Any], forcing: list[dict[str, Any]]) -> list[str]:
    """An adaptive setting against budget forcing at its largest budget and at equal accuracy."""
    largest = forcing[-1]
    lines = [_versus(probe, largest, "largest budget")]
    equal = [row for row in forcing if row["accuracy"] >= probe["accuracy"]]
    if equal:
        lines.append(_versus(probe, equal[0], "equal accuracy (smallest B at least as accurate)"))
    else:
        lines.append("  no budget-forcing budget is as accurate as this setting")
    return lines


def _versus(probe: dict[str, Any], other: dict[str, Any], why: str) -> str:
    def ratio(key: str) -> str:
        return f"{other[key] / probe[key]:.2f}x" if probe[key] else "n/a"

    return (
        f"  vs {other['label']} ({why}): budget forcing ÷ adaptive tokens: thinking "
        f"{ratio('thinking')}, all {ratio('total')} (> 1: the adaptive one spends fewer); accuracy "
        f"{100 * (probe['accuracy'] - other['accuracy']):+.1f} pt"
    )


def main(args: argparse.Namespace) -> None:
    from ttscale.inputs import load_batch

    path = args.input or str(files("ttscale") / "data" / "demo.jsonl")
    questions = load_batch(path).questions[: args.items]
    budgets = sorted(args.budgets)
    configs: list[tuple[str, Any, int]] = [
        (f"budget_forcing B={b}", BudgetForcingConfig(budgets_tokens=[b]), b) for b in budgets
    ]
    cap = budgets[-1]
    for k in args.k:
        config = ProbeStopConfig(
            budgets_tokens=[cap],
            probe_every=args.probe_every,
            k=k,
            probe_max_tokens=args.probe_max_tokens,
        )
        configs.append((f"probe_stop B={cap} every={args.probe_every} k={k}", config, cap))
    for start in args.confidence_start:
        confident = ConfidenceStopConfig(
            budgets_tokens=[cap],
            probe_every=args.probe_every,
            probe_max_tokens=args.probe_max_tokens,
            threshold_start=start,
            threshold_end=max(start, ConfidenceStopConfig().threshold_end),
        )
        label = f"confidence_stop B={cap} every={args.probe_every} start={start:g}"
        configs.append((label, confident, cap))
    started = time.perf_counter()
    grouped = asyncio.run(run_all(args.engine, questions, configs, args.seed))
    elapsed = time.perf_counter() - started
    engine = "scripted 'settling' (synthetic)" if args.engine == "scripted" else "vLLM, SmolLM2"
    print(f"{len(questions)} items of {path}; engine {engine}; {elapsed:.0f} s for all units")
    rows = {label: summarise(label, records) for label, records in grouped.items()}
    print(f"{'setting':<48} {'acc':>6} {'think':>7} {'probe':>6} {'all':>7}  stops")
    for row in rows.values():
        print(
            f"{row['label']:<48} {row['accuracy']:>6.3f} {row['thinking']:>7.1f} "
            f"{row['probe']:>6.1f} {row['total']:>7.1f}  {row['stops']}"
        )
    forcing = [rows[label] for label, _, _ in configs if label.startswith("budget_forcing")]
    for label, row in rows.items():
        if not label.startswith("budget_forcing"):
            print(label)
            print("\n".join(compare(row, forcing)))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--engine", choices=("vllm", "scripted"), default="vllm")
    parser.add_argument("--input", help="a JSONL input (default: the demo input)")
    parser.add_argument("--items", type=int, default=12)
    parser.add_argument("--budgets", type=int, nargs="+", default=[32, 64, 128, 256])
    parser.add_argument("--probe-every", type=int, default=16)
    parser.add_argument("--k", type=int, nargs="+", default=[2, 3])
    parser.add_argument("--confidence-start", type=float, nargs="+", default=[0.85, 0.6])
    parser.add_argument("--probe-max-tokens", type=int, default=12)
    parser.add_argument("--seed", type=int, default=0)
    main(parser.parse_args())
