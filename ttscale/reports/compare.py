"""Several runs side by side: aligned cost–accuracy curves per slice, recommendations, languages.

Pure: ``build_comparison`` takes each run's own ``Report`` (read by
``ttscale.ledger.compare_data``) and recomputes nothing, so every figure in a comparison is the
figure of that run's own report. Runs may differ in model, date, language or strategies; a
slice (dataset, language) that a run lacks is simply absent from that run's column.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from datetime import UTC, datetime

from pydantic import BaseModel

from ttscale.analysis.curves import CurvePoint
from ttscale.analysis.recommend import Recommendation
from ttscale.reports.headline import SliceHeadline, slice_headlines
from ttscale.reports.model import Report

COMPARISON_SCHEMA_VERSION = 1
REFERENCE_LANGUAGE = "en"
"""The crosslingual table's gaps are measured against this language's accuracy."""


class ComparedRun(BaseModel):
    """One run of the comparison, with its own report's headline per slice."""

    run_id: str
    engine: str
    engine_kind: str
    created_at: str
    strategies: list[str]
    headlines: list[SliceHeadline]


class RunCurve(BaseModel):
    """One run's curve of one strategy in one slice (its report's points, unchanged)."""

    run_id: str
    strategy: str
    points: list[CurvePoint]


class ComparedSlice(BaseModel):
    """One (dataset, language): every run's curves and recommendations there."""

    dataset: str
    language: str
    items: dict[str, int]
    """Items per run id (runs without the slice are absent)."""
    curves: list[RunCurve]
    recommendations: dict[str, list[Recommendation]]


class SideBySideRow(BaseModel):
    """One slice; ``cells`` line up with ``Comparison.runs`` (None: the run lacks the slice)."""

    dataset: str
    language: str
    cells: list[SliceHeadline | None]


class Variant(BaseModel):
    """A column group of the crosslingual table: one run's strategy (e.g. a language-forcing
    setting) at one budget."""

    run_id: str
    strategy: str
    budget: int


class LanguageCell(BaseModel):
    accuracy: float | None = None
    accuracy_low: float | None = None
    accuracy_high: float | None = None
    gap_to_reference: float | None = None
    """Accuracy minus the reference language's at the same variant, in percentage points."""


class LanguageRow(BaseModel):
    language: str
    items: int
    cells: list[LanguageCell]
    """Aligned with ``CrosslingualTable.variants``."""


class CrosslingualTable(BaseModel):
    """One dataset measured in several languages: a row per language, a column per variant."""

    dataset: str
    reference: str
    has_reference: bool
    variants: list[Variant]
    rows: list[LanguageRow]


class Comparison(BaseModel):
    """Several runs compared. ``model_dump_json()`` is the published ``compare.json``."""

    schema_version: int = COMPARISON_SCHEMA_VERSION
    compare_id: str
    generated_at: str
    runs: list[ComparedRun]
    slices: list[ComparedSlice]
    side_by_side: list[SideBySideRow]
    crosslingual: list[CrosslingualTable]


def comparison_id(run_ids: Sequence[str]) -> str:
    """``cmp-`` and 12 hex digits of the run ids in order: the same runs give the same folder."""
    digest = hashlib.sha256("\n".join(run_ids).encode("utf-8")).hexdigest()
    return f"cmp-{digest[:12]}"


def build_comparison(reports: Sequence[Report], generated_at: str | None = None) -> Comparison:
    """The comparison of ``reports`` (one per run, in the order given)."""
    runs = [
        ComparedRun(
            run_id=r.run.run_id,
            engine=r.run.engine,
            engine_kind=r.run.engine_kind,
            created_at=r.run.created_at,
            strategies=sorted({p.strategy for s in r.slices for p in s.curves}),
            headlines=slice_headlines(r),
        )
        for r in reports
    ]
    keys = sorted({(s.dataset, s.language) for r in reports for s in r.slices})
    by_key = {(r.run.run_id, s.dataset, s.language): s for r in reports for s in r.slices}
    slices, side_by_side = [], []
    for dataset, language in keys:
        present = [
            (r.run.run_id, by_key[(r.run.run_id, dataset, language)])
            for r in reports
            if (r.run.run_id, dataset, language) in by_key
        ]
        curves = [
            RunCurve(
                run_id=run_id,
                strategy=strategy,
                points=sorted(
                    (p for p in s.curves if p.strategy == strategy), key=lambda p: p.budget
                ),
            )
            for run_id, s in present
            for strategy in sorted({p.strategy for p in s.curves})
        ]
        slices.append(
            ComparedSlice(
                dataset=dataset,
                language=language,
                items={run_id: s.items for run_id, s in present},
                curves=curves,
                recommendations={run_id: list(s.recommendations) for run_id, s in present},
            )
        )
        headlines = {
            run.run_id: next(
                (h for h in run.headlines if (h.dataset, h.language) == (dataset, language)), None
            )
            for run in runs
        }
        side_by_side.append(
            SideBySideRow(
                dataset=dataset,
                language=language,
                cells=[headlines[run.run_id] for run in runs],
            )
        )
    return Comparison(
        compare_id=comparison_id([r.run.run_id for r in reports]),
        generated_at=generated_at or datetime.now(UTC).isoformat(timespec="seconds"),
        runs=runs,
        slices=slices,
        side_by_side=side_by_side,
        crosslingual=crosslingual_tables(slices),
    )


def crosslingual_tables(slices: Sequence[ComparedSlice]) -> list[CrosslingualTable]:
    """A table per dataset seen in two or more languages (e.g. MGSM), the reference row first."""
    tables = []
    for dataset in sorted({s.dataset for s in slices}):
        languages = [s for s in slices if s.dataset == dataset]
        if len(languages) < 2:
            continue
        languages.sort(key=lambda s: (s.language != REFERENCE_LANGUAGE, s.language))
        points = {
            (s.language, c.run_id, c.strategy, p.budget): p
            for s in languages
            for c in s.curves
            for p in c.points
        }
        variants = [
            Variant(run_id=r, strategy=st, budget=b)
            for r, st, b in sorted({key[1:] for key in points})
        ]
        has_reference = languages[0].language == REFERENCE_LANGUAGE
        rows = []
        for s in languages:
            cells = []
            for v in variants:
                point = points.get((s.language, v.run_id, v.strategy, v.budget))
                ref = points.get((REFERENCE_LANGUAGE, v.run_id, v.strategy, v.budget))
                if point is None:
                    cells.append(LanguageCell())
                    continue
                gap = (
                    None
                    if ref is None or s.language == REFERENCE_LANGUAGE
                    else 100 * (point.accuracy - ref.accuracy)
                )
                cells.append(
                    LanguageCell(
                        accuracy=point.accuracy,
                        accuracy_low=point.accuracy_low,
                        accuracy_high=point.accuracy_high,
                        gap_to_reference=gap,
                    )
                )
            rows.append(LanguageRow(language=s.language, items=max(s.items.values()), cells=cells))
        tables.append(
            CrosslingualTable(
                dataset=dataset,
                reference=REFERENCE_LANGUAGE,
                has_reference=has_reference,
                variants=variants,
                rows=rows,
            )
        )
    return tables
