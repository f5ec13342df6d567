"""Render a ``Report`` as Markdown (tables; texts from the ledger escaped for Markdown/HTML)."""

from __future__ import annotations

import html
import json

from ttscale.reports.headline import headline_text, slice_headlines
from ttscale.reports.model import (
    InverseScalingFinding,
    Report,
    SliceReport,
    SummaryRow,
    strategy_label,
)
from ttscale.reports.tables import (
    FRONTIER_HEADER,
    SATURATION_HEADER,
    SATURATION_NOTE,
    frontier_rows,
    pct,
    saturation_rows,
    sweep_saving_text,
)
from ttscale.reports.thinking import (
    THINKING_AXES_HEADER,
    THINKING_AXES_NOTE,
    thinking_axes_rows,
)


def md_text(text: object, limit: int = 200) -> str:
    """Untrusted text made safe for a Markdown table cell: HTML-escaped, one line, no pipes."""
    value = " ".join(str(text).split())
    if len(value) > limit:
        value = value[: limit - 1] + "…"
    return html.escape(value, quote=False).replace("|", "&#124;").replace("`", "&#96;")


def _money(value: float | None) -> str:
    return "–" if value is None else f"${value:.6f}"


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return lines


def _summary_table(rows: list[SummaryRow], recommended_default: str | None = None) -> list[str]:
    return _table(
        [
            "strategy",
            "budget",
            "items",
            "accuracy",
            "mean completion tok/item",
            "total completion tok",
            "mean prompt tok/item",
            "total prompt tok",
        ],
        [
            [
                md_text(strategy_label(r.strategy, recommended_default)),
                str(r.budget),
                str(r.items),
                pct(r.accuracy),
                f"{r.mean_completion_tokens:.1f}",
                str(r.total_completion_tokens),
                f"{r.mean_prompt_tokens:.1f}",
                str(r.total_prompt_tokens),
            ]
            for r in rows
        ],
    )


def _slice_sections(s: SliceReport, limit: float) -> list[str]:
    lines = [f"### {md_text(s.dataset)} / {md_text(s.language)} ({s.items} items)", ""]
    lines += ["#### Curves (95% paired bootstrap intervals)", ""]
    lines += _table(
        [
            "strategy",
            "budget",
            "accuracy",
            "95% CI",
            "completion tok/item",
            "95% CI",
            "USD/item",
            "USD/correct",
        ],
        [
            [
                md_text(p.strategy),
                str(p.budget),
                pct(p.accuracy),
                f"{pct(p.accuracy_low)}–{pct(p.accuracy_high)}",
                f"{p.mean_completion_tokens:.1f}",
                f"{p.completion_tokens_low:.1f}–{p.completion_tokens_high:.1f}",
                _money(p.usd_per_item),
                _money(p.usd_per_correct),
            ]
            for p in s.curves
        ],
    )
    lines += ["", "#### Recommendations", ""]
    if s.withheld:
        lines.append(f"- **No recommendation**: {md_text(s.withheld, 400)}. ")
        lines.append(f"  Needed: {md_text(s.needed, 400)}.")
    for r in s.recommendations:
        rule = (
            f"marginal gain < τ={r.threshold:g} pts/1k tok"
            if r.rule == "marginal_gain"
            else f"max accuracy − λ·cost, λ={r.threshold:.3g} pts/1k tok"
        )
        shares = ", ".join(
            f"{md_text(d.strategy)}@{d.budget}: {d.share:.0%}" for d in r.distribution[:4]
        )
        notes = []
        if not r.plateau_reached:
            notes.append("no plateau within measured budgets — try larger budgets")
        if r.capped_by_decline:
            notes.append("capped before a significant decline")
        lines.append(
            f"- **{md_text(r.strategy)} @ {r.budget}** ({rule}): accuracy {pct(r.accuracy)}, "
            f"{r.mean_completion_tokens:.0f} tok/item, {_money(r.usd_per_item)}/item; "
            f"bootstrap: {shares}" + (f" — {'; '.join(notes)}" if notes else "")
        )
    if s.frontier_configs:
        lines += ["", "#### Pareto frontier", ""]
        lines.append(" → ".join(f"{md_text(st)}@{b}" for st, b in s.frontier_configs))
        if s.frontier:
            lines.append("")
            lines += _table(
                FRONTIER_HEADER,
                frontier_rows(s, md_text, "@"),
            )
    if s.saturation:
        lines += ["", "#### Saturation: F(N) = F_max·(1 − (1 − p)^N)", ""]
        rows = saturation_rows(s, md_text, limit)
        lines += _table(SATURATION_HEADER, rows) if rows else ["No meaningful fit."]
        lines += ["", SATURATION_NOTE.format(limit=limit)]
    lines += ["", "#### Inverse scaling", ""]
    lines += _inverse_lines(s.inverse_scaling)
    return [*lines, ""]


def _inverse_lines(findings: list[InverseScalingFinding]) -> list[str]:
    if not findings:
        return ["No strategy with two or more budgets."]
    lines = []
    for f in findings:
        verdict = (
            f"**significant decline — recommendations capped at budget {f.cap_budget}**"
            if f.cap_budget is not None
            else "no significant decline"
        )
        lines.append(f"- {md_text(f.strategy)}: {verdict}")
        for t in f.pairwise:
            lines.append(
                f"  - {t.lower_budget} → {t.higher_budget}: lost {t.lost}, gained {t.gained}, "
                f"McNemar p={t.p_value:.3g} (Holm {t.p_holm:.3g})"
                + (" **significant**" if t.significant else "")
            )
        if f.trend is not None:
            tr = f.trend
            lines.append(
                f"  - trend on realised {tr.token_measure}: "
                f"{tr.slope_points_per_1k_tokens:+.2f} pts per 1k tok, "
                f"permutation p={tr.p_value:.3g} (Holm {tr.p_holm:.3g})"
                + (" **significant**" if tr.significant else "")
            )
        for e in f.examples:
            lines.append(
                f"  - example {md_text(e.item_id, 60)}: {md_text(e.question)} — gold "
                f"{md_text(e.gold, 60)}; answered {md_text(e.lower_answer, 60)} then "
                f"{md_text(e.higher_answer, 60)}"
            )
    return lines


def render_markdown(report: Report) -> str:
    """The report as one Markdown document."""
    run = report.run
    lines = [
        f"# Cost–accuracy report: run `{md_text(run.run_id)}`",
        "",
        *(
            ["> **Scripted test engine: these numbers come from no model.**", ""]
            if run.scripted
            else []
        ),
        "## Headline: what to set",
        "",
        *(f"- {md_text(headline_text(h), 600)}" for h in slice_headlines(report)),
        "",
        "## Run",
        "",
        f"- model/engine: `{md_text(run.engine)}` ({md_text(run.engine_kind)})",
        f"- run created: {md_text(run.created_at)}; report generated: {report.generated_at}",
        f"- seed: {run.seed}; fingerprint: `{md_text(run.fingerprint)}`",
        f"- versions: {md_text(json.dumps(run.versions, sort_keys=True), 400)}",
        f"- calls: {report.totals.calls} ({report.totals.discarded_calls} discarded); "
        f"completion tokens: {report.totals.completion_tokens}; "
        f"prompt tokens: {report.totals.prompt_tokens}",
        *([f"- {report.totals.scoring_note()}"] if report.totals.scoring_calls else []),
        *(f"- sweep saving: {line}" for line in [sweep_saving_text(report.totals)] if line),
        f"- input errors: {report.input_errors}",
        f"- errored units (left out of every figure): {report.errored_units}",
        f"- bootstrap: {report.settings.bootstrap_resamples} paired resamples over items, "
        f"seed {report.settings.seed}; τ = {report.settings.tau:g} pts/1k tok; "
        f"λ = {report.lambda_per_1k_tokens:.3g} pts/1k tok",
        "",
        "## Per strategy × budget (all slices)",
        "",
        *_summary_table(report.summary, report.recommended_default),
        "",
    ]
    if report.thinking_axes:
        lines += ["## Samples × thinking tokens per sample (probed thinking)", ""]
        lines += _table(THINKING_AXES_HEADER, thinking_axes_rows(report.thinking_axes, md_text))
        lines += ["", THINKING_AXES_NOTE, ""]
    if report.slices:
        lines += ["## Recommendations per slice", ""]
        lines += _table(
            ["dataset", "language", "rule", "strategy", "budget", "accuracy", "tok/item"],
            [
                [
                    md_text(s.dataset),
                    md_text(s.language),
                    r.rule,
                    md_text(r.strategy),
                    str(r.budget),
                    pct(r.accuracy),
                    f"{r.mean_completion_tokens:.0f}",
                ]
                for s in report.slices
                for r in s.recommendations
            ],
        )
        lines += ["", "## Slices", ""]
        for s in report.slices:
            lines += _slice_sections(s, report.settings.extrapolation_limit)
    return "\n".join(lines).rstrip() + "\n"
