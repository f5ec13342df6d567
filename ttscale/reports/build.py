"""Build a ``Report`` of one run from the ledger: SQL aggregates first, numpy for resampling."""

from __future__ import annotations

import json
import zlib
from datetime import UTC, datetime
from typing import Any

import duckdb
import numpy as np

from ttscale.analysis.curves import (
    Pricing,
    SliceBootstrap,
    SliceData,
    bootstrap_slice,
    curve_points,
    slices_from_columns,
)
from ttscale.analysis.frontier import frontier_order, frontier_steps
from ttscale.analysis.inverse import (
    PairwiseDecline,
    TrendTest,
    decline_cap,
    holm_adjust,
    run_decline_tests,
)
from ttscale.analysis.recommend import (
    Recommendation,
    choice_distribution,
    marginal_gain_choice,
    replicate_marginal_gain_choices,
    utility_choice,
)
from ttscale.analysis.saturation import fit_strategy
from ttscale.errors import ConfigError
from ttscale.ledger import report_queries as q
from ttscale.ledger.readers import item_outcome_columns
from ttscale.reports.model import (
    DeclineExample,
    InverseScalingFinding,
    Report,
    ReportSettings,
    RunInfo,
    SliceReport,
    StopReasonCount,
    SummaryRow,
    TokenTotals,
)

__all__ = ["ReportSettings", "build_report"]


def build_report(
    con: duckdb.DuckDBPyConnection, run_id: str, settings: ReportSettings | None = None
) -> Report:
    """The cost–accuracy report of ``run_id``; raises ``ConfigError`` if the run is unknown."""
    settings = settings or ReportSettings()
    run = _run_info(con, run_id)
    throughput = _measured_throughput(con, run_id)
    pricing = Pricing(
        price_per_million_tokens=settings.price_per_million_tokens,
        prompt_price_per_million_tokens=settings.prompt_price_per_million_tokens,
        gpu_hour_price=settings.gpu_hour_price,
        throughput_tokens_per_second=settings.throughput_tokens_per_second or throughput,
    )
    lambda_per_1k = _utility_lambda(settings, pricing)
    slices = slices_from_columns(item_outcome_columns(con, run_id))
    built = [_slice_report(data, settings, pricing) for data in slices]
    slice_reports = [report for report, _ in built]
    _apply_decline_tests(con, run_id, slices, slice_reports, settings)
    for data, (report, boot) in zip(slices, built, strict=True):
        _add_frontier_and_recommendations(data, boot, report, settings, lambda_per_1k)
    (error_count,) = _one(con, q.INPUT_ERROR_COUNT, run_id)
    (errored_units,) = _one(con, q.ERRORED_UNITS, run_id)
    return Report(
        generated_at=datetime.now(UTC).isoformat(timespec="seconds"),
        run=run,
        settings=settings,
        summary=_summary_rows(con, q.SUMMARY_BY_STRATEGY_BUDGET, run_id),
        slice_summary=_summary_rows(con, q.SUMMARY_BY_SLICE, run_id),
        stop_reasons=[
            StopReasonCount(strategy=s, budget=b, stop_reason=r, decisions=n)
            for s, b, r, n in con.execute(q.STOP_REASONS, [run_id]).fetchall()
        ],
        totals=_call_totals(con, run_id),
        measured_throughput_tokens_per_second=throughput,
        lambda_per_1k_tokens=lambda_per_1k,
        slices=slice_reports,
        input_errors=int(error_count),
        errored_units=int(errored_units),
    )


def _one(con: duckdb.DuckDBPyConnection, sql: str, *params: Any) -> tuple[Any, ...]:
    row = con.execute(sql, list(params)).fetchone()
    assert row is not None, "aggregate queries always return one row"
    return tuple(row)


def _run_info(con: duckdb.DuckDBPyConnection, run_id: str) -> RunInfo:
    row = con.execute(q.RUN_METADATA, [run_id]).fetchone()
    if row is None:
        raise ConfigError(f"run {run_id!r} is not in the ledger")
    run, created, fingerprint, engine, engine_kind, seed, request, versions, prompts = row
    return RunInfo(
        run_id=run,
        created_at=created,
        fingerprint=fingerprint,
        engine=engine,
        engine_kind=engine_kind,
        seed=seed,
        request=_json_object(request),
        versions=_json_object(versions),
        prompts=_json_object(prompts),
    )


def _json_object(text: str | None) -> dict[str, Any]:
    value = json.loads(text) if text else {}
    return value if isinstance(value, dict) else {"value": value}


def _measured_throughput(con: duckdb.DuckDBPyConnection, run_id: str) -> float | None:
    tokens, seconds = _one(con, q.MEASURED_THROUGHPUT, run_id)
    return float(tokens) / float(seconds) if tokens and seconds else None


def _call_totals(con: duckdb.DuckDBPyConnection, run_id: str) -> TokenTotals:
    calls, prompt, completion, thinking, discarded = _one(con, q.CALL_TOTALS, run_id)
    return TokenTotals(
        calls=calls,
        discarded_calls=discarded,
        prompt_tokens=prompt,
        completion_tokens=completion,
        thinking_tokens=thinking,
    )


def _summary_rows(con: duckdb.DuckDBPyConnection, sql: str, run_id: str) -> list[SummaryRow]:
    cursor = con.execute(sql, [run_id])
    names = [d[0] for d in cursor.description]
    return [
        SummaryRow.model_validate(dict(zip(names, row, strict=True))) for row in cursor.fetchall()
    ]


def _utility_lambda(settings: ReportSettings, pricing: Pricing) -> float:
    """λ in accuracy points per 1k tokens: given, derived from money, or τ (same exchange rate)."""
    if settings.lambda_per_1k_tokens is not None:
        return settings.lambda_per_1k_tokens
    usd_per_1k = pricing.usd_per_1k_completion_tokens()
    if settings.value_per_correct is not None and usd_per_1k is not None:
        return 100 * usd_per_1k / settings.value_per_correct
    return settings.tau


def _slice_seed(settings: ReportSettings, data: SliceData) -> int:
    # Seeded by slice name, not position, so adding a slice does not reshuffle the others.
    return settings.seed * 1_000_003 + zlib.crc32(f"{data.dataset}\x00{data.language}".encode())


def _slice_report(
    data: SliceData, settings: ReportSettings, pricing: Pricing
) -> tuple[SliceReport, SliceBootstrap]:
    boot = bootstrap_slice(data, settings.bootstrap_resamples, _slice_seed(settings, data))
    curves = curve_points(data, boot, pricing, settings.confidence)
    saturation = []
    for strategy in sorted({s for s, _ in data.configs}):
        points = [p for p in curves if p.strategy == strategy]
        fit = fit_strategy(
            strategy,
            [p.budget for p in points],
            [p.correct for p in points],
            [p.items for p in points],
            settings.epsilon,
        )
        if fit is not None:
            saturation.append(fit)
    report = SliceReport(
        dataset=data.dataset,
        language=data.language,
        items=len(data.item_ids),
        curves=curves,
        saturation=saturation,
    )
    return report, boot


def _strategy_columns(data: SliceData, strategy: str) -> list[int]:
    columns = [c for c, (s, _) in enumerate(data.configs) if s == strategy]
    return sorted(columns, key=lambda c: data.configs[c][1])


def _decline_tests(
    data: SliceData, strategy: str, settings: ReportSettings
) -> tuple[list[PairwiseDecline], TrendTest | None]:
    columns = _strategy_columns(data, strategy)
    if len(columns) < 2:
        return [], None
    # Only items with an outcome at every budget keep the comparisons paired.
    complete = ~np.isnan(data.correct[:, columns]).any(axis=1)
    measure = "thinking_tokens"
    tokens = data.thinking_tokens[:, columns][complete]
    if not tokens.any():
        measure, tokens = "completion_tokens", data.completion_tokens[:, columns][complete]
    return run_decline_tests(
        strategy,
        [data.configs[c][1] for c in columns],
        data.correct[:, columns][complete],
        tokens,
        measure,
        settings.permutation_resamples,
        _slice_seed(settings, data),
    )


def _apply_decline_tests(
    con: duckdb.DuckDBPyConnection,
    run_id: str,
    slices: list[SliceData],
    reports: list[SliceReport],
    settings: ReportSettings,
) -> None:
    """Run every decline test, Holm-adjust them together, and set each strategy's cap."""
    findings: list[tuple[SliceData, SliceReport, InverseScalingFinding]] = []
    for data, report in zip(slices, reports, strict=True):
        for strategy in sorted({s for s, _ in data.configs}):
            pairwise, trend = _decline_tests(data, strategy, settings)
            if pairwise:
                finding = InverseScalingFinding(strategy=strategy, pairwise=pairwise, trend=trend)
                findings.append((data, report, finding))
    tests: list[PairwiseDecline | TrendTest] = []
    for _, _, finding in findings:
        tests.extend(finding.pairwise)
        if finding.trend is not None:
            tests.append(finding.trend)
    adjusted = dict(zip(map(id, tests), holm_adjust([t.p_value for t in tests]), strict=True))

    def settle(test: Any) -> Any:
        p_holm = adjusted[id(test)]
        return test.model_copy(update={"p_holm": p_holm, "significant": p_holm < settings.alpha})

    for data, report, finding in findings:
        pairwise = [settle(t) for t in finding.pairwise]
        trend = settle(finding.trend) if finding.trend is not None else None
        points = [p for p in report.curves if p.strategy == finding.strategy]
        cap = decline_cap([p.budget for p in points], [p.accuracy for p in points], pairwise, trend)
        examples = _decline_examples(con, run_id, data, finding.strategy, pairwise, settings)
        report.inverse_scaling.append(
            finding.model_copy(
                update={
                    "pairwise": pairwise,
                    "trend": trend,
                    "cap_budget": cap,
                    "examples": examples,
                }
            )
        )


def _decline_examples(
    con: duckdb.DuckDBPyConnection,
    run_id: str,
    data: SliceData,
    strategy: str,
    pairwise: list[PairwiseDecline],
    settings: ReportSettings,
) -> list[DeclineExample]:
    significant = [t for t in pairwise if t.significant]
    if not significant or settings.decline_examples == 0:
        return []
    first = significant[0]
    rows = con.execute(
        q.DECLINE_EXAMPLES,
        [
            run_id,
            data.dataset,
            data.language,
            strategy,
            first.lower_budget,
            first.higher_budget,
            settings.decline_examples,
        ],
    ).fetchall()
    return [
        DeclineExample(item_id=i, question=qn, gold=g, lower_answer=lo, higher_answer=hi)
        for i, qn, g, lo, hi in rows
    ]


def _add_frontier_and_recommendations(
    data: SliceData,
    boot: SliceBootstrap,
    report: SliceReport,
    settings: ReportSettings,
    lambda_per_1k: float,
) -> None:
    accuracy = np.array([p.accuracy for p in report.curves])
    cost = np.array([p.mean_completion_tokens for p in report.curves])
    caps = {f.strategy: f.cap_budget for f in report.inverse_scaling if f.cap_budget is not None}
    candidates = np.array(
        [budget <= caps.get(strategy, budget) for strategy, budget in data.configs]
    )
    all_configs = np.ones_like(candidates)
    front = frontier_order(accuracy, cost, all_configs)
    report.frontier_configs = [data.configs[c] for c in front]
    report.frontier = frontier_steps(
        data.configs, front, accuracy, cost, boot.accuracy, boot.completion_tokens
    )

    def by_marginal_gain(allowed: np.ndarray) -> tuple[int, bool]:
        return marginal_gain_choice(
            accuracy,
            cost,
            boot.accuracy,
            boot.completion_tokens,
            allowed,
            settings.tau,
            settings.confidence,
        )

    chosen, plateau = by_marginal_gain(candidates)
    best_utility = int(utility_choice(accuracy, cost, candidates, lambda_per_1k))
    # "Capped" means the decline changed the answer, not merely that some config was removed.
    capped_gain = chosen != by_marginal_gain(all_configs)[0]
    capped_utility = best_utility != int(utility_choice(accuracy, cost, all_configs, lambda_per_1k))
    replicate_gain = replicate_marginal_gain_choices(
        boot.accuracy, boot.completion_tokens, candidates, settings.tau
    )
    replicate_utility = utility_choice(
        boot.accuracy, boot.completion_tokens, candidates, lambda_per_1k
    )
    report.recommendations = [
        _recommendation(
            "marginal_gain",
            chosen,
            report,
            settings.tau,
            plateau,
            capped_gain,
            replicate_gain,
            data,
        ),
        _recommendation(
            "utility",
            best_utility,
            report,
            lambda_per_1k,
            True,
            capped_utility,
            replicate_utility,
            data,
        ),
    ]


def _recommendation(
    rule: Any,
    config: int,
    report: SliceReport,
    threshold: float,
    plateau: bool,
    capped: bool,
    replicate_choices: np.ndarray,
    data: SliceData,
) -> Recommendation:
    point = report.curves[config]
    return Recommendation(
        rule=rule,
        strategy=point.strategy,
        budget=point.budget,
        accuracy=point.accuracy,
        mean_completion_tokens=point.mean_completion_tokens,
        usd_per_item=point.usd_per_item,
        threshold=threshold,
        plateau_reached=plateau,
        capped_by_decline=capped,
        distribution=choice_distribution(replicate_choices, data.configs),
    )
