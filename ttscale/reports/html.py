"""Render a ``Report`` as ONE self-contained HTML file: inline CSS, inline SVG, a little inline JS.

No network access is needed to view it. Every text from the ledger (questions, answers, model
names, prompts) goes through ``html.escape``; the script reads tooltips with ``textContent``.
"""

from __future__ import annotations

import json
from html import escape

from ttscale.reports.charts import budget_chart, cost_chart
from ttscale.reports.headline import headline_text, slice_headlines
from ttscale.reports.model import Report, SliceReport, strategy_label
from ttscale.reports.svg import PALETTE, share_bars
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

PAGE_CSS = """
body{font:15px/1.45 system-ui,sans-serif;margin:24px auto;max-width:1180px;padding:0 12px;color:#222}
table{border-collapse:collapse;margin:8px 0 16px}td,th{border:1px solid #ddd;padding:3px 8px}
th{background:#f3f3f3}td.num{text-align:right;font-variant-numeric:tabular-nums}
.scroll{max-width:100%;overflow-x:auto}
svg.chart{display:block;width:100%;height:auto;max-width:600px}svg.bars{max-width:420px}
.tick,.legend{font-size:14px;fill:#333}.axis{font-size:15px;fill:#111}
.flag{color:#b00020;font-weight:600}.headline{background:#f3f7fb;border-left:4px solid #1f77b4;padding:.2em 1em}.withheld{color:#8a5a00}.ok{color:#2a7a2a}
#tip{position:absolute;display:none;background:#222;color:#fff;padding:4px 8px;border-radius:4px;
font-size:12px;pointer-events:none;white-space:pre;max-width:420px}
.charts{display:grid;grid-template-columns:repeat(auto-fill,minmax(min(100%,460px),1fr));gap:16px}
pre{white-space:pre-wrap;overflow-wrap:anywhere;background:#f6f6f6;padding:8px}
"""

# Tooltips and the slice selector; textContent keeps tooltip text inert.
PAGE_JS = """
(function () {
  var tip = document.getElementById('tip');
  document.querySelectorAll('[data-tip]').forEach(function (el) {
    el.addEventListener('mouseenter', function () {
      tip.textContent = el.getAttribute('data-tip'); tip.style.display = 'block';
    });
    el.addEventListener('mousemove', function (e) {
      tip.style.left = (e.pageX + 12) + 'px'; tip.style.top = (e.pageY + 12) + 'px';
    });
    el.addEventListener('mouseleave', function () { tip.style.display = 'none'; });
  });
  var select = document.getElementById('slice-select');
  function show() {
    document.querySelectorAll('section.slice').forEach(function (s) {
      s.hidden = select.value !== 'all' && s.getAttribute('data-slice') !== select.value;
    });
  }
  if (select) { select.addEventListener('change', show); show(); }
  document.body.setAttribute('data-charts-ready',
    String(document.querySelectorAll('svg.chart').length));
})();
"""


def page(title: str, body: str) -> str:
    """A whole self-contained HTML document; ``title`` and ``body`` are already escaped."""
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{title}</title><style>{PAGE_CSS}</style></head>"
        f'<body>{body}<div id="tip"></div><script>{PAGE_JS}</script></body></html>'
    )


def _e(value: object) -> str:
    return escape(str(value))


def _table(header: list[str], rows: list[list[str]]) -> str:
    head = "".join(f"<th>{_e(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{cell}</td>" for cell in row) + "</tr>" for row in rows)
    return f'<div class="scroll"><table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></div>'


def _slice_section(
    index: int, s: SliceReport, limit: float, recommended_default: str | None = None
) -> str:
    strategies = sorted({p.strategy for p in s.curves})
    charts = [cost_chart(s, strategies, recommended_default)]
    charts += [
        budget_chart(s, strategy, PALETTE[k % len(PALETTE)])
        for k, strategy in enumerate(strategies)
        if sum(p.strategy == strategy for p in s.curves) > 1
    ]
    parts = [
        f'<section class="slice" data-slice="{index}">',
        f"<h2>{_e(s.dataset)} / {_e(s.language)} <small>({s.items} items)</small></h2>",
        "<h3>Recommendations</h3>",
    ]
    if s.withheld:
        parts.append(
            f'<p class="withheld"><b>No recommendation</b>: {_e(s.withheld)}. '
            f"Needed: {_e(s.needed)}.</p>"
        )
    for r in s.recommendations:
        notes = []
        if not r.plateau_reached:
            notes.append('<span class="flag">no plateau within measured budgets</span>')
        if r.capped_by_decline:
            notes.append('<span class="flag">capped before a significant decline</span>')
        rule = (
            f"marginal gain upper CI &lt; τ = {r.threshold:g} pts/1k tok"
            if r.rule == "marginal_gain"
            else f"max accuracy − λ·cost, λ = {r.threshold:.3g} pts/1k tok"
        )
        money = "" if r.usd_per_item is None else f", ${r.usd_per_item:.6f}/item"
        parts.append(
            f"<p><b>{_e(r.strategy)} @ {r.budget}</b> ({rule}): accuracy {pct(r.accuracy)}, "
            f"{r.mean_completion_tokens:.0f} tok/item{money} {' '.join(notes)}</p>"
            "<p>Bootstrap distribution of this choice:</p>"
            + share_bars([(f"{d.strategy} @ {d.budget}", d.share) for d in r.distribution[:8]])
        )
    parts.append('<div class="charts">' + "".join(charts) + "</div>")
    parts.append("<h3>Curves (95% paired bootstrap intervals)</h3>")
    parts.append(
        _table(
            [
                "strategy",
                "budget",
                "items",
                "accuracy",
                "95% CI",
                "tok/item",
                "95% CI",
                "USD/item",
                "USD/correct",
            ],
            [
                [
                    _e(p.strategy),
                    str(p.budget),
                    str(p.items),
                    pct(p.accuracy),
                    f"{pct(p.accuracy_low)}–{pct(p.accuracy_high)}",
                    f"{p.mean_completion_tokens:.1f}",
                    f"{p.completion_tokens_low:.1f}–{p.completion_tokens_high:.1f}",
                    "–" if p.usd_per_item is None else f"{p.usd_per_item:.6f}",
                    "–" if p.usd_per_correct is None else f"{p.usd_per_correct:.6f}",
                ]
                for p in s.curves
            ],
        )
    )
    if s.frontier:
        parts.append("<h3>Pareto frontier: marginal gain per 1k tokens</h3>")
        parts.append(
            _table(
                FRONTIER_HEADER,
                frontier_rows(s, _e, " @ "),
            )
        )
    if s.saturation:
        parts.append("<h3>Saturation: F(N) = F<sub>max</sub>·(1 − (1 − p)<sup>N</sup>)</h3>")
        rows = saturation_rows(s, _e, limit)
        parts.append(
            (_table(SATURATION_HEADER, rows) if rows else "<p>No meaningful fit.</p>")
            + f"<p>{_e(SATURATION_NOTE.format(limit=limit))}</p>"
        )
    parts.append(_inverse_section(s))
    parts.append("</section>")
    return "".join(parts)


def _inverse_section(s: SliceReport) -> str:
    parts = ["<h3>Inverse scaling</h3>"]
    for f in s.inverse_scaling:
        verdict = (
            f'<span class="flag">significant decline: capped at budget {f.cap_budget}</span>'
            if f.cap_budget is not None
            else '<span class="ok">no significant decline</span>'
        )
        parts.append(f"<p><b>{_e(f.strategy)}</b>: {verdict}</p>")
        rows = [
            [
                f"McNemar {t.lower_budget} → {t.higher_budget}",
                f"lost {t.lost}, gained {t.gained}",
                f"{t.p_value:.3g}",
                f"{t.p_holm:.3g}",
                "yes" if t.significant else "no",
            ]
            for t in f.pairwise
        ]
        if f.trend is not None:
            t = f.trend
            rows.append(
                [
                    f"trend on realised {_e(t.token_measure)}",
                    f"{t.slope_points_per_1k_tokens:+.2f} pts per 1k tok",
                    f"{t.p_value:.3g}",
                    f"{t.p_holm:.3g}",
                    "yes" if t.significant else "no",
                ]
            )
        parts.append(_table(["test", "effect", "p", "p (Holm)", "significant"], rows))
        if f.examples:
            parts.append(
                _table(
                    ["item", "question", "gold", "lower-budget answer", "higher-budget answer"],
                    [
                        [
                            _e(e.item_id),
                            _e(e.question),
                            _e(e.gold),
                            _e(e.lower_answer),
                            _e(e.higher_answer),
                        ]
                        for e in f.examples
                    ],
                )
            )
    return "".join(parts)


def _thinking_axes_section(report: Report) -> str:
    if not report.thinking_axes:
        return ""
    rows = thinking_axes_rows(report.thinking_axes, _e)
    return (
        "<h2>Samples × thinking tokens per sample (probed thinking)</h2>"
        + _table(THINKING_AXES_HEADER, rows)
        + f"<p>{_e(THINKING_AXES_NOTE)}</p>"
    )


def render_html(report: Report) -> str:
    """The report as one self-contained HTML document."""
    run = report.run
    options = ['<option value="all">all slices</option>'] + [
        f'<option value="{k}">{_e(s.dataset)} / {_e(s.language)}</option>'
        for k, s in enumerate(report.slices)
    ]
    summary = _table(
        [
            "strategy",
            "budget",
            "items",
            "accuracy",
            "mean completion tok",
            "total completion tok",
            "mean prompt tok",
            "total prompt tok",
        ],
        [
            [
                _e(strategy_label(r.strategy, report.recommended_default)),
                str(r.budget),
                str(r.items),
                pct(r.accuracy),
                f"{r.mean_completion_tokens:.1f}",
                str(r.total_completion_tokens),
                f"{r.mean_prompt_tokens:.1f}",
                str(r.total_prompt_tokens),
            ]
            for r in report.summary
        ],
    )
    meta = {
        "model/engine": f"{run.engine} ({run.engine_kind})",
        "run created": run.created_at,
        "report generated": report.generated_at,
        "seed": run.seed,
        "fingerprint": run.fingerprint,
        "calls": f"{report.totals.calls} ({report.totals.discarded_calls} discarded)",
        "completion tokens": report.totals.completion_tokens,
        "prompt tokens": report.totals.prompt_tokens,
        **({"scoring": report.totals.scoring_note()} if report.totals.scoring_calls else {}),
        "sweep saving": sweep_saving_text(report.totals) or "not measured",
        "input errors": report.input_errors,
        "errored units (left out of every figure)": report.errored_units,
        "bootstrap": f"{report.settings.bootstrap_resamples} paired resamples, "
        f"seed {report.settings.seed}",
    }
    details = json.dumps(
        {"versions": run.versions, "prompts": run.prompts, "request": run.request},
        indent=2,
        sort_keys=True,
        ensure_ascii=False,
    )
    body = [
        f"<h1>Cost–accuracy report: {_e(run.run_id)}</h1>",
        "<p><strong>Scripted test engine: these numbers come from no model.</strong></p>"
        if run.scripted
        else "",
        '<section class="headline"><h2>Headline: what to set</h2><ul>'
        + "".join(f"<li>{_e(headline_text(h))}</li>" for h in slice_headlines(report))
        + "</ul></section>",
        _table(["", ""], [[_e(k), _e(v)] for k, v in meta.items()]),
        f"<details><summary>versions, prompts, request</summary><pre>{_e(details)}</pre></details>",
        "<h2>Per strategy × budget (all slices)</h2>",
        summary,
        _thinking_axes_section(report),
        '<p><label>Slice: <select id="slice-select">' + "".join(options) + "</select></label></p>",
        *(
            _slice_section(k, s, report.settings.extrapolation_limit, report.recommended_default)
            for k, s in enumerate(report.slices)
        ),
    ]
    return page(f"ttscale report {_e(run.run_id)}", "".join(body))
