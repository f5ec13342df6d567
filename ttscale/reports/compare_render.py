"""Render a ``Comparison`` to Markdown and one self-contained HTML file, and publish all three.

Run ids, engine names, datasets and languages come from the ledger: every one is escaped
(``md_text`` in Markdown, ``html.escape`` in HTML and the SVG).
"""

from __future__ import annotations

from collections.abc import Callable
from html import escape

from ttscale.reports.charts import (
    ACCURACY_AXIS,
    TOKENS_AXIS,
    curve_series,
    recommendation_highlight,
)
from ttscale.reports.compare import ComparedSlice, Comparison, CrosslingualTable
from ttscale.reports.headline import SliceHeadline, markdown_table
from ttscale.reports.html import page
from ttscale.reports.markdown import md_text
from ttscale.reports.svg import PALETTE, line_chart
from ttscale.reports.tables import pct
from ttscale.storage import ObjectStore, join_key

Escape = Callable[[object], str]
NOTE = (
    "Each run's figures are those of its own report (95% paired-bootstrap intervals over its "
    "items); runs are not paired with each other, so compare their intervals, not their points."
)


def _e(value: object) -> str:
    return escape(str(value))


def recommendation_cell(h: SliceHeadline | None) -> str:
    """A run's recommendation in one slice as plain text (unescaped)."""
    if h is None:
        return "not in this run"
    if h.strategy is None or h.accuracy is None:
        return f"no recommendation: {h.withheld}"
    money = "" if h.usd_per_item is None else f", ${h.usd_per_item:.6f}/item"
    return (
        f"{h.strategy} @ {h.budget}: {pct(h.accuracy)} "
        f"({pct(h.accuracy_low or 0)}–{pct(h.accuracy_high or 0)}), "
        f"{h.tokens_per_item or 0:,.0f} tok/item{money}"
    )


def side_by_side_table(c: Comparison, text: Escape) -> tuple[list[str], list[list[str]]]:
    """Header and rows: one row per slice, one column per run (its recommendation)."""
    header = ["slice"] + [text(run.run_id) for run in c.runs]
    rows = [
        [f"{text(row.dataset)}/{text(row.language)}"]
        + [text(recommendation_cell(cell)) for cell in row.cells]
        for row in c.side_by_side
    ]
    return header, rows


def _gap(value: float | None) -> str:
    return "" if value is None else f" ({value:+.1f} pts)"


def crosslingual_rows(t: CrosslingualTable, text: Escape) -> tuple[list[str], list[list[str]]]:
    """A row per language; each variant's cell is accuracy and its gap to the reference."""
    header = ["language", "items"] + [
        f"{text(v.run_id)} · {text(v.strategy)} @ {v.budget}" for v in t.variants
    ]
    rows = [
        [text(row.language), str(row.items)]
        + [
            "–" if cell.accuracy is None else f"{pct(cell.accuracy)}{_gap(cell.gap_to_reference)}"
            for cell in row.cells
        ]
        for row in t.rows
    ]
    return header, rows


def _crosslingual_caption(t: CrosslingualTable) -> str:
    if not t.has_reference:
        return f"{t.dataset}: no {t.reference} slice, so no gap is shown."
    return f"{t.dataset}: accuracy per language; in brackets the gap to {t.reference} (points)."


def _point_rows(s: ComparedSlice, text: Escape) -> list[list[str]]:
    return [
        [
            text(c.run_id),
            text(c.strategy),
            str(p.budget),
            str(p.items),
            f"{pct(p.accuracy)} ({pct(p.accuracy_low)}–{pct(p.accuracy_high)})",
            f"{p.mean_completion_tokens:,.1f}",
        ]
        for c in s.curves
        for p in c.points
    ]


POINT_HEADER = ["run", "strategy", "budget", "items", "accuracy (95% CI)", "tokens/item"]


def render_comparison_markdown(c: Comparison) -> str:
    """The comparison as Markdown (the Prefect artifact shows its side-by-side table)."""
    lines = [
        f"# Comparison {md_text(c.compare_id)}",
        "",
        f"Generated {md_text(c.generated_at)}. {NOTE}",
        "",
        markdown_table(
            ["run", "engine", "created", "strategies"],
            [
                [
                    md_text(r.run_id),
                    md_text(r.engine),
                    md_text(r.created_at),
                    md_text(", ".join(r.strategies)),
                ]
                for r in c.runs
            ],
        ),
        "",
        "## Recommendations side by side",
        "",
        markdown_table(*side_by_side_table(c, md_text)),
    ]
    for t in c.crosslingual:
        lines += ["", f"## Languages: {md_text(t.dataset)}", "", md_text(_crosslingual_caption(t))]
        lines += ["", markdown_table(*crosslingual_rows(t, md_text))]
    for s in c.slices:
        lines += ["", f"## {md_text(s.dataset)} / {md_text(s.language)}", ""]
        lines.append(markdown_table(POINT_HEADER, _point_rows(s, md_text)))
    return "\n".join(lines) + "\n"


def overlay_chart(c: Comparison, s: ComparedSlice) -> str:
    """Every run's curves in one slice: a colour per run, a dash per strategy, rings on the
    runs' marginal-gain recommendations."""
    colors = {r.run_id: PALETTE[i % len(PALETTE)] for i, r in enumerate(c.runs)}
    strategies = sorted({curve.strategy for curve in s.curves})
    series = [
        curve_series(
            f"{curve.run_id} · {curve.strategy}",
            curve.points,
            colors[curve.run_id],
            dashed=strategies.index(curve.strategy) % 2 == 1,
        )
        for curve in s.curves
    ]
    highlights = [
        recommendation_highlight(r, prefix=f"{run_id}: ", color=colors[run_id])
        for run_id, recs in s.recommendations.items()
        for r in recs
        if r.rule == "marginal_gain"
    ]
    return line_chart(
        f"Accuracy vs cost, runs overlaid — {s.dataset} / {s.language}",
        TOKENS_AXIS,
        ACCURACY_AXIS,
        series,
        highlights,
    )


def _html_table(header: list[str], rows: list[list[str]]) -> str:
    head = "".join(f"<th>{h}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{cell}</td>" for cell in row) + "</tr>" for row in rows)
    return f'<div class="scroll"><table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></div>'


def render_comparison_html(c: Comparison) -> str:
    """The comparison as one self-contained HTML document (inline CSS, SVG and script)."""
    scripted = any(r.engine_kind == "scripted" for r in c.runs)
    body = [
        f"<h1>Comparison {_e(c.compare_id)}</h1>",
        "<p><strong>Scripted test engine: these numbers come from no model.</strong></p>"
        if scripted
        else "",
        f"<p>Generated {_e(c.generated_at)}. {_e(NOTE)}</p>",
        _html_table(
            ["run", "engine", "created", "strategies"],
            [
                [
                    _e(r.run_id),
                    _e(f"{r.engine} ({r.engine_kind})"),
                    _e(r.created_at),
                    _e(", ".join(r.strategies)),
                ]
                for r in c.runs
            ],
        ),
        '<section class="headline"><h2>Recommendations side by side</h2>',
        _html_table(*side_by_side_table(c, _e)),
        "</section>",
    ]
    for t in c.crosslingual:
        body += [f"<h2>Languages: {_e(t.dataset)}</h2>", f"<p>{_e(_crosslingual_caption(t))}</p>"]
        body.append(_html_table(*crosslingual_rows(t, _e)))
    for s in c.slices:
        body += [
            f'<section class="slice"><h2>{_e(s.dataset)} / {_e(s.language)}</h2>',
            f'<div class="charts">{overlay_chart(c, s)}</div>',
            _html_table([_e(h) for h in POINT_HEADER], _point_rows(s, _e)),
            "</section>",
        ]
    return page(f"ttscale comparison {_e(c.compare_id)}", "".join(body))


def publish_comparison(c: Comparison, store: ObjectStore, prefix: str) -> dict[str, str]:
    """Write ``compare.json``, ``compare.md`` and ``compare.html`` under ``prefix``; their URIs."""
    renderings = {
        "json": ("compare.json", c.model_dump_json(indent=2), "application/json"),
        "markdown": ("compare.md", render_comparison_markdown(c), "text/markdown; charset=utf-8"),
        "html": ("compare.html", render_comparison_html(c), "text/html; charset=utf-8"),
    }
    uris = {}
    for kind, (name, text, content_type) in renderings.items():
        key = join_key(prefix, name)
        store.write_bytes(key, text.encode("utf-8"), content_type=content_type)
        uris[kind] = store.uri(key)
    return uris
