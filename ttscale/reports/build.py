"""Build a ``Report`` of one run from its ``ReportData``: no SQL, numpy for the resampling.

The data comes from ``ttscale.ledger.readers.read_report_data``; the ledger aggregates in SQL,
this module runs the statistics and assembles the result.
"""

from __future__ import annotations

import json
import zlib
from datetime import UTC, datetime
from typing import Any

import numpy as np

from ttscale.analysis.curves import (
    Pricing,
    SliceBootstrap,
    SliceData,
    bootstrap_slice,
    curve_points,
    slices_from_outcomes,
)
from ttscale.analysis.evidence import evidence_verdict
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
from ttscale.reports.data import DeclineCandidate, ReportData
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
from ttscale.reports.thinking import ThinkingAxesRow
from ttscale.strategies.defaults import recommended_kind

__all__ = ["ReportSettings", "build_report"]


def build_report(data: ReportData, settings: ReportSettings | None = None) -> Report:
    """The cost–accuracy report of the run ``data`` was read from.

    Raises ``ValueError`` when ``settings`` asks for more decline examples per finding than
    ``data`` holds candidates for (read it with at least ``settings.decline_examples``).
    """
    settings = settings or ReportSettings()
    if settings.decline_examples > data.decline_examples_per_pair:
        raise ValueError(
            f"the report shows {settings.decline_examples} decline examples per finding, but the "
            f"data holds {data.decline_examples_per_pair} per budget pair"
        )
    run = _run_info(data.run)
    throughput = _measured_throughput(data)
    pricing = Pricing(
        price_per_million_tokens=settings.price_per_million_tokens,
        prompt_price_per_million_tokens=settings.prompt_price_per_million_tokens,
        gpu_hour_price=settings.gpu_hour_price,
        throughput_tokens_per_second=settings.throughput_tokens_per_second or throughput,
    )
    lambda_per_1k = _utility_lambda(settings, pricing)
    slices = slices_from_outcomes(data.item_outcomes)
    built = [_slice_report(slice_data, settings, pricing) for slice_data in slices]
    slice_reports = [report for report, _ in built]
    _apply_decline_tests(data.decline_candidates, slices, slice_reports, settings)
    for slice_data, (report, boot) in zip(slices, built, strict=True):
        _add_frontier_and_recommendations(slice_data, boot, report, settings, lambda_per_1k)
    calls, prompt, completion, thinking, discarded = data.call_totals
    return Report(
        generated_at=datetime.now(UTC).isoformat(timespec="seconds"),
        run=run,
        settings=settings,
        summary=[SummaryRow.model_validate(row) for row in data.summary],
        slice_summary=[SummaryRow.model_validate(row) for row in data.slice_summary],
        stop_reasons=[
            StopReasonCount(strategy=s, budget=b, stop_reason=r, decisions=n)
            for s, b, r, n in data.stop_reasons
        ],
        totals=TokenTotals(
            calls=calls,
            discarded_calls=discarded,
            prompt_tokens=prompt,
            completion_tokens=completion,
            thinking_tokens=thinking,
            scoring_calls=data.scoring_totals[0],
            scoring_tokens=data.scoring_totals[1],
            generated_tokens=data.generated_completion_tokens,
        ),
        measured_throughput_tokens_per_second=throughput,
        lambda_per_1k_tokens=lambda_per_1k,
        slices=slice_reports,
        input_errors=data.input_errors,
        errored_units=data.errored_units,
        thinking_axes=[ThinkingAxesRow.model_validate(row) for row in data.thinking_axes],
        recommended_default=recommended_kind(run.request),
    )


def _run_info(row: dict[str, Any]) -> RunInfo:
    return RunInfo(
        run_id=row["run_id"],
        created_at=row["created_at"],
        fingerprint=row["fingerprint"],
        engine=row["engine"],
        engine_kind=row["engine_kind"],
        seed=row["seed"],
        request=_json_object(row["request_json"]),
        versions=_json_object(row["versions_json"]),
        prompts=_json_object(row["prompts_json"]),
    )


def _json_object(text: str | None) -> dict[str, Any]:
    value = json.loads(text) if text else {}
    return value if isinstance(value, dict) else {"value": value}


def _measured_throughput(data: ReportData) -> float | None:
    tokens, seconds = data.measured_completion_tokens, data.measured_latency_s
    return float(tokens) / float(seconds) if tokens and seconds else None


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
    candidates: list[DeclineCandidate],
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
        examples = _decline_examples(candidates, data, finding.strategy, pairwise, settings)
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
    candidates: list[DeclineCandidate],
    data: SliceData,
    strategy: str,
    pairwise: list[PairwiseDecline],
    settings: ReportSettings,
) -> list[DeclineExample]:
    """Items of the first significant pair: right at its lower budget, wrong at its higher one."""
    significant = [t for t in pairwise if t.significant]
    if not significant or settings.decline_examples == 0:
        return []
    first = significant[0]
    # Candidates come ordered by item id, as the examples are shown.
    matching = [
        c
        for c in candidates
        if (c.dataset, c.language, c.strategy) == (data.dataset, data.language, strategy)
        and (c.lower_budget, c.higher_budget) == (first.lower_budget, first.higher_budget)
    ]
    return [
        DeclineExample(
            item_id=c.item_id,
            question=c.question,
            gold=c.gold,
            lower_answer=c.lower_answer,
            higher_answer=c.higher_answer,
        )
        for c in matching[: settings.decline_examples]
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
    verdict = evidence_verdict(
        report.items,
        data.configs,
        accuracy,
        boot.accuracy,
        settings.min_items,
        settings.min_accuracy,
        settings.confidence,
    )
    if verdict is not None:
        report.withheld, report.needed = verdict.reason, verdict.needed
        return

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
