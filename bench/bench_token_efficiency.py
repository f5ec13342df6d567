"""Token efficiency of adaptive sample counts, by replay on one large-N sample pool.

For majority@1..N (N = the pool size by default), each adaptive kind at its default settings and
over a grid of documented settings (Adaptive-Consistency, ESC, OptScale, best-of-N and weighted
vote, the verifier gate) and the recommended adaptive default, replays every item (recorded order
plus seeded permutations) and prints, side by side, accuracy, completion tokens per item, the
token ratio majority@N ÷ it and the accuracy difference in points; then, per method, the cheapest
setting within 1 point of majority@N. A setting that cannot run on the pool (OptScale on scores
outside [0, 1]) says why; deepconf and confidence_stop need token confidence the pool may lack.

Scorers: on an imported pool (``--pool``), kind ``stored`` (its own scores, e.g. a reward
model's); otherwise the mean token probability (which costs no scoring tokens). The verifier
gate's threshold comes from each item's warm-up, or from a calibration run: a percentile of its
scores, or (``calibrate="match_majority"``) the cheapest percentile whose gate matches its
majority@N accuracy on its labelled samples. A calibration run is played by 2-fold
cross-fitting: the items of one half are gated on a threshold taken from the other half only
(the percentiles each half chose are printed), so no item calibrates its own threshold. Last,
side by side: majority@N and the two recommended presets (Adaptive-Consistency 0.8 without a
scorer, the match-majority gate with one) against the goal, ≥ 5x fewer tokens at no more than
0.5 points below majority@N.

    # a pool from an earlier run (phase 'sample' calls of one unit):
    .venv/bin/python bench/bench_token_efficiency.py --ledger L.duckdb --run-id RUN --budget 16
    # a pool made by another tool, imported as `ttscale pool import` does (a temporary lake):
    .venv/bin/python bench/bench_token_efficiency.py --pool bench/data/qwen25_math_cot_100.jsonl.gz \
        --pool-format qwen-math --permutations 5
    # or generate one now with the embedded model (a few minutes on CPU):
    .venv/bin/python bench/bench_token_efficiency.py --generate --samples 16
    # keep the generated pool (--ledger), and replay at N_max = 8 from a pool of 16:
    .venv/bin/python bench/bench_token_efficiency.py --generate --samples 16 --ledger pool.sqlite
    .venv/bin/python bench/bench_token_efficiency.py --ledger pool.sqlite --run-id pool --budget 16 --n-max 8
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import tempfile
from importlib.resources import files
from pathlib import Path
from typing import Any

from ttscale.ledger import Ledger
from ttscale.ledger.readers import sample_pool_rows
from ttscale.pools.writer import PoolImport, import_pool, imported_pool
from ttscale.strategies.config import MeanLogprobScorerConfig, ScorerConfig, StoredScorerConfig
from ttscale.strategies.defaults import recommended_adaptive
from ttscale.strategies.gate_target import CalibrationItem, target_threshold
from ttscale.strategies.kinds.adaptive_consistency import AdaptiveConsistencyConfig
from ttscale.strategies.kinds.best_of_n import BestOfNConfig
from ttscale.strategies.kinds.esc import ESCConfig
from ttscale.strategies.kinds.majority import MajorityConfig
from ttscale.strategies.kinds.optscale import OptScaleConfig
from ttscale.strategies.kinds.verifier_gate import VerifierGateConfig
from ttscale.strategies.kinds.weighted_vote import WeightedVoteConfig
from ttscale.strategies.replay import PoolItem, PoolSample, SamplePool, replay
from ttscale.strategies.scorers import mean_logprob_score


def generate_pool(samples: int, max_tokens: int, items: int, seed: int, ledger_path: Path) -> str:
    """Run majority@samples with the embedded model into ``ledger_path``; returns the run id."""
    from ttscale.engines import VLLMEngineConfig, create_engine
    from ttscale.inputs import load_batch
    from ttscale.ledger import Ledger
    from ttscale.prompts import resolve_profile
    from ttscale.runner import Unit, attempt_unit

    demo = load_batch(str(files("ttscale") / "data" / "demo.jsonl")).questions
    gsm8k = load_batch(str(files("ttscale") / "data" / "samples" / "gsm8k-50.jsonl")).questions
    questions = (demo + gsm8k)[:items]
    config = MajorityConfig(n=[samples], max_tokens=max_tokens)

    async def run() -> list[dict[str, Any]]:
        engine = await create_engine(VLLMEngineConfig())
        profile = resolve_profile("auto", "smollm2")
        try:
            unit = Unit("majority", samples, config)
            results = await asyncio.gather(
                *(attempt_unit(engine, profile, q, unit, "pool", seed) for q in questions)
            )
            return [result.to_json() for result in results]
        finally:
            await engine.close()

    records = asyncio.run(run())
    with Ledger(ledger_path) as ledger:
        ledger.add_items("pool", questions)
        ledger.ingest_units([("bench", records)])
    return "pool"


def evaluate(config: Any, pool: SamplePool, budget: int, permutations: int) -> tuple[float, float]:
    """(accuracy, completion tokens per item), averaged over recorded order and permutations.

    Each replay runs the strategy's live code on the replay engine, which serves the pool.
    """
    accuracies, tokens = [], []
    orders = [("recorded", 0)] + [("permutation", seed) for seed in range(1, permutations + 1)]
    for order, seed in orders:
        results = replay(config, pool, budget, order, seed)  # type: ignore[arg-type]
        accuracies.append(statistics.mean(r.correct for r in results))
        tokens.append(statistics.mean(r.completion_tokens for r in results))
    return statistics.mean(accuracies), statistics.mean(tokens)


def pool_score(sample: PoolSample) -> float:
    """The score replay gives ``sample``: the stored one, else its mean token probability."""
    if sample.score is not None:
        return sample.score
    return mean_logprob_score(sample.cumulative_logprob, sample.completion_tokens)


def labelled(item: PoolItem, n_max: int) -> CalibrationItem:
    """``item``'s first ``n_max`` samples as a calibration run hands them to a verifier gate
    (``ledger.calibration.calibration_items`` reads the same from a lake)."""
    samples = item.samples[:n_max]
    return CalibrationItem.graded(
        item.item_id,
        item.gold,
        item.dataset,
        answers=[s.answer for s in samples],
        scores=[pool_score(s) for s in samples],
        completion_tokens=[s.completion_tokens for s in samples],
    )


def evaluate_cross_fitted(
    config: VerifierGateConfig, pool: SamplePool, budget: int, permutations: int
) -> tuple[float, float, str]:
    """``evaluate`` with calibration data from the other half of the items only (2-fold):
    its scores (a percentile) or its labelled samples (``match_majority``). Also returns, per
    half, the threshold's percentile that its calibration chose (match_majority)."""
    halves = [pool.items[0::2], pool.items[1::2]]
    accuracy = tokens = 0.0
    chosen = []
    for gated, other in (halves, halves[::-1]):
        if config.calibrate == "match_majority":
            items = tuple(labelled(item, budget) for item in other)
            update: dict[str, Any] = {"calibration_items": items}
            target = target_threshold(items, budget, config.target_margin, config.answer)
            chosen.append("none" if target.percentile is None else f"p{target.percentile}")
        else:
            scores = tuple(pool_score(sample) for item in other for sample in item.samples)
            update = {"calibration_scores": scores}
        calibrated = config.model_copy(update=update)
        acc, tok = evaluate(calibrated, SamplePool(pool.run_id, gated), budget, permutations)
        accuracy += acc * len(gated) / len(pool.items)
        tokens += tok * len(gated) / len(pool.items)
    return accuracy, tokens, "/".join(chosen)


def load_pool(args: argparse.Namespace, tmp: str) -> tuple[SamplePool, int]:
    """The pool to replay and its N: imported (``--pool``), generated, or read from a ledger."""
    if args.pool:
        # The same code path as `ttscale pool import`, into a throwaway lake.
        ledger = str(Path(tmp) / "pool.sqlite")
        summary = import_pool(
            PoolImport(args.pool, args.pool_format, ledger, "pool", tokenizer=args.tokenizer)
        )
        if summary.bad_rows:
            print(
                f"pool: {len(summary.bad_rows)} bad lines skipped (first: {summary.bad_rows[0].reason})"
            )
        with Ledger(ledger, read_only=True) as led:
            imported, answers_stored = imported_pool(led, summary.run_id)
            rows = sample_pool_rows(led, summary.run_id, "majority")
        pool = SamplePool.from_rows(
            summary.run_id, rows, answers_stored=answers_stored, imported=imported
        )
        return pool, min(len(item.samples) for item in pool.items)
    if args.generate:
        # --ledger with --generate keeps the pool there, for later runs of this bench.
        ledger = args.ledger or str(Path(tmp) / "pool.duckdb")
        run_id = generate_pool(args.samples, args.max_tokens, args.items, args.seed, Path(ledger))
        budget = args.samples
    else:
        ledger, run_id, budget = args.ledger, args.run_id, args.budget
    rows = sample_pool_rows(ledger, run_id, args.strategy, budget)
    return SamplePool.from_rows(run_id, rows), budget


def strategy_grid(budget: int, scorer: ScorerConfig) -> dict[str, list[Any]]:
    """Per method: its default settings first, then the documented grid around them."""
    n = [budget]
    return {
        "adaptive_consistency": [AdaptiveConsistencyConfig(n=n)] + [
            AdaptiveConsistencyConfig(n=n, threshold=t, round_size=1) for t in (0.8, 0.9, 0.95, 0.99)
        ],
        "esc": [ESCConfig(n=n)] + [ESCConfig(n=n, window=w) for w in (2, 4, 8) if w <= budget],
        "optscale": [OptScaleConfig(n=n, scorer=scorer)] + [
            OptScaleConfig(n=n, k=k, q=q, s_star=s, select="weighted_vote", scorer=scorer)
            for k in (2, 4) for q in (0.05, 0.2) for s in (0.5, 0.8)
        ],
        "best_of_n": [BestOfNConfig(n=n, scorer=scorer)],
        "weighted_vote": [WeightedVoteConfig(n=n, scorer=scorer)],
        "verifier_gate (item warm-up)": [VerifierGateConfig(n=n, scorer=scorer)] + [
            VerifierGateConfig(n=n, warmup=w, percentile=p, answer=a, scorer=scorer)
            for w in (2, 4) for p in (50, 75, 90) for a in ("best", "weighted_vote")
        ],
        "verifier_gate (calibration run)": [
            VerifierGateConfig(n=n, calibration_run="other half", percentile=p, answer=a, scorer=scorer)
            for p in (10, 25, 50, 75, 90, 97) for a in ("best", "weighted_vote")
        ],
        # First the recommended preset with a scorer and a calibration run, then its variants.
        "verifier_gate (match majority)": [
            recommended_adaptive(budget, scorer=scorer, calibration_run="other half")
        ] + [
            VerifierGateConfig(
                n=n, calibration_run="other half", calibrate="match_majority", answer=a,
                target_margin=m, scorer=scorer,
            )
            for a, m in (("best", 0.005), ("weighted_vote", 0.0), ("weighted_vote", 0.005))
        ],
        "recommended default": [recommended_adaptive(budget)],
    }  # fmt: skip


GOAL_RATIO, GOAL_POINTS = 5.0, -0.5
"""The project's goal for the recommended default (README "Recommended adaptive default")."""
DESCRIBED = {"threshold", "window", "k", "q", "s_star", "warmup", "percentile", "answer"}
TARGET_DESCRIBED = {"target_margin", "answer"}


def settings_of(config: Any) -> str:
    """The settings the grid varies, as ``key=value``."""
    if isinstance(config, VerifierGateConfig) and config.calibrate == "match_majority":
        settings = config.model_dump(include=TARGET_DESCRIBED)
        return ",".join(f"{k.removeprefix('target_')}={v}" for k, v in settings.items())
    settings = config.model_dump(include=DESCRIBED)
    if isinstance(config, VerifierGateConfig) and config.calibration_run:
        settings.pop("warmup")
    return ",".join(f"{k}={v}" for k, v in settings.items())


def row(name: str, settings: str, acc: float, tok: float, reference: tuple[float, float]) -> str:
    ratio = reference[1] / tok if tok else float("inf")
    points = 100 * (acc - reference[0])
    return f"{name:<32} {settings:<54} {acc:8.3f} {tok:10.1f} {ratio:7.2f}x {points:+8.1f}"


def main(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        pool, pool_size = load_pool(args, tmp)
    print(f"pool: {len(pool.items)} items × up to {pool_size} samples (run {pool.run_id})")
    budget = args.n_max or pool_size
    imported = any(item.imported for item in pool.items)
    # An imported pool serves its stored scores (a reward model's) to scorer kind 'stored' only.
    scorer: ScorerConfig = StoredScorerConfig() if imported else MeanLogprobScorerConfig()
    print(f"orders: recorded + {args.permutations} seeded permutations; scorer: {scorer.kind}")
    reference = evaluate(MajorityConfig(n=[budget]), pool, budget, args.permutations)
    print(f"{'method':<32} {'settings':<54} {'accuracy':>8} {'tokens/item':>10} "
          f"{f'maj@{budget}/it':>8} {'Δ points':>8}")  # fmt: skip
    for k in range(1, budget + 1):
        acc, tok = evaluate(MajorityConfig(n=[k]), pool, k, args.permutations)
        print(row(f"majority@{k}", "", acc, tok, reference))
    if not any(sample.confidence for item in pool.items for sample in item.samples):
        print("deepconf, confidence_stop: not replayed (the pool stores no token confidence)")
    measured: dict[str, tuple[float, float]] = {}
    for method, configs in strategy_grid(budget, scorer).items():
        rows = []
        for config in configs:
            chosen = ""
            try:
                if isinstance(config, VerifierGateConfig) and config.calibration_run:
                    acc, tok, chosen = evaluate_cross_fitted(
                        config, pool, budget, args.permutations
                    )
                else:
                    acc, tok = evaluate(config, pool, budget, args.permutations)
            except ValueError as exc:  # e.g. OptScale's model needs scores in [0, 1]
                print(f"{method:<32} {settings_of(config):<54} not applicable: {exc}")
                continue
            is_default = (
                not rows and "calibration" not in method and method != "recommended default"
            )
            measured.setdefault(method, (acc, tok))  # each method's first (default) setting
            settings = settings_of(config) + (" (default)" if is_default else "")
            rows.append((acc, tok, settings + (f" → {chosen}" if chosen else "")))
            print(row(method, rows[-1][2], acc, tok, reference))
        matching = [r for r in rows if r[0] >= reference[0] - 0.01]
        if matching:
            acc, tok, settings = min(matching, key=lambda r: r[1])
            print(f"  {method}: cheapest within 1 pt of majority@{budget} is {settings}: "
                  f"token ratio majority/adaptive = {reference[1] / tok:.2f}x")  # fmt: skip
        else:
            print(f"  {method}: no setting within 1 pt of majority@{budget}")
    print_bar(measured, reference, budget)
    if args.splits:
        print_splits(pool, budget, scorer, reference, args.splits)


def print_splits(
    pool: SamplePool,
    budget: int,
    scorer: ScorerConfig,
    reference: tuple[float, float],
    splits: int,
) -> None:
    """The match-majority preset cross-fitted on ``splits`` seeded random halvings of the items
    (recorded order + 1 permutation each): how much its figure depends on the one split."""
    preset = recommended_adaptive(budget, scorer=scorer, calibration_run="other half")
    ratios, points = [], []
    for seed in range(1, splits + 1):
        items = list(pool.items)
        random.Random(seed).shuffle(items)
        acc, tok, _ = evaluate_cross_fitted(
            preset, SamplePool(pool.run_id, tuple(items)), budget, 1
        )
        ratios.append(reference[1] / tok)
        points.append(100 * (acc - reference[0]))
    met = sum(r >= GOAL_RATIO and p >= GOAL_POINTS for r, p in zip(ratios, points, strict=True))
    print(f"match-majority preset over {splits} random splits (goal met in {met}): {min(ratios):.2f}-"
          f"{max(ratios):.2f}x (mean {statistics.mean(ratios):.2f}x), {min(points):+.1f} to "
          f"{max(points):+.1f} points (mean {statistics.mean(points):+.1f})")  # fmt: skip


def print_bar(
    measured: dict[str, tuple[float, float]], reference: tuple[float, float], budget: int
) -> None:
    """The two recommended presets beside majority@N, against the goal: ≥ 5x fewer tokens at
    no more than 0.5 points below it. The gate's thresholds came from the other half only."""
    print(f"\nside by side (goal: >= {GOAL_RATIO}x fewer tokens than majority@{budget}, "
          f">= {GOAL_POINTS:+.1f} points):")  # fmt: skip
    print(row(f"majority@{budget}", "", *reference, reference))
    presets = [
        ("recommended default", "recommended (no scorer)", "adaptive_consistency 0.8"),
        (
            "verifier_gate (match majority)",
            "recommended (scorer+calibration)",
            "gate, match majority",
        ),
    ]
    for method, name, label in presets:
        if method not in measured:
            print(f"{name:<32} {label}: not measured")
            continue
        acc, tok = measured[method]
        ratio, points = reference[1] / tok, 100 * (acc - reference[0])
        met = "meets" if ratio >= GOAL_RATIO and points >= GOAL_POINTS else "does not meet"
        print(row(name, f"{label}: {met} the goal", acc, tok, reference))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--pool", help="a pool file to import (path or URI; .jsonl or .jsonl.gz)")
    parser.add_argument(
        "--pool-format", default="qwen-math", help="its format, as `ttscale pool import --format`"
    )
    parser.add_argument("--tokenizer", help="counts the tokens the pool does not store")
    parser.add_argument("--ledger", help="ledger holding the pool")
    parser.add_argument("--run-id", help="run whose samples form the pool")
    parser.add_argument("--strategy", default="majority", help="unit whose samples form the pool")
    parser.add_argument("--budget", type=int, default=16, help="that unit's N")
    parser.add_argument(
        "--generate", action="store_true", help="generate a pool with the embedded model"
    )
    parser.add_argument("--samples", type=int, default=16)
    parser.add_argument("--max-tokens", type=int, default=160)
    parser.add_argument("--items", type=int, default=40)
    parser.add_argument(
        "--n-max",
        type=int,
        help="N of the reference majority@N and every N_max (default: the pool's)",
    )
    parser.add_argument("--permutations", type=int, default=5)
    parser.add_argument(
        "--splits", type=int, default=0, help="also cross-fit the gate preset on K random halvings"
    )
    parser.add_argument("--seed", type=int, default=0)
    arguments = parser.parse_args()
    if not (arguments.pool or arguments.generate or (arguments.ledger and arguments.run_id)):
        parser.error("give --pool, --ledger and --run-id, or --generate")
    main(arguments)
