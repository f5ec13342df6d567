"""What a report is built from: one run's ledger data as plain rows and numpy columns.

``ttscale.ledger.readers.read_report_data`` fills it; ``build_report`` assembles a ``Report``
from it without a connection, so reports never run SQL and a report can be rebuilt from saved
data.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ttscale.analysis.curves import ItemOutcomes


@dataclass(frozen=True)
class DeclineCandidate:
    """An item right at ``lower_budget`` and wrong at the next budget of its strategy and slice."""

    dataset: str
    language: str
    strategy: str
    lower_budget: int
    higher_budget: int
    item_id: str
    question: str
    gold: str
    lower_answer: str | None
    higher_answer: str | None


@dataclass(frozen=True)
class ReportData:
    """Everything ``build_report`` needs of one run, read in one go."""

    run: dict[str, Any]
    """The ``runs`` row: run_id, created_at, fingerprint, engine, engine_kind, seed, and
    request_json, versions_json, prompts_json (JSON text or None)."""
    item_outcomes: ItemOutcomes
    """Every answered decision (``readers.item_outcomes``)."""
    summary: list[dict[str, Any]]
    """Per (strategy, budget): the ``SummaryRow`` columns."""
    slice_summary: list[dict[str, Any]]
    """Per (dataset, language, strategy, budget): the ``SummaryRow`` columns."""
    stop_reasons: list[tuple[str, int, str, int]]
    """(strategy, budget, stop_reason, decisions), most frequent reason first per unit."""
    call_totals: tuple[int, int, int, int, int]
    """Over every call: (calls, prompt, completion, thinking tokens, discarded calls)."""
    measured_completion_tokens: float | None
    """Completion tokens of every call (None when the run made none)."""
    measured_latency_s: float | None
    """Summed call latency; with the tokens above it gives the per-stream throughput."""
    input_errors: int
    errored_units: int
    decline_candidates: list[DeclineCandidate] = field(default_factory=list)
    """For every consecutive budget pair of every strategy and slice, the first
    ``decline_examples_per_pair`` items (by item id) right at the lower and wrong at the higher
    budget. The decline tests pick which pairs a report shows, so all are read up front."""
    decline_examples_per_pair: int = 0
    """How many candidates per pair were read: the most ``ReportSettings.decline_examples``
    that a report built from this data may show."""
    scoring_totals: tuple[int, int] = (0, 0)
    """(calls, prompt tokens) of the scoring calls: a reward model's prefill, already within
    ``call_totals``' calls and prompt tokens."""
    thinking_axes: list[dict[str, Any]] = field(default_factory=list)
    """Per slice, strategy and budget of units that probed their thinking: the
    ``ThinkingAxesRow`` columns (samples × thinking tokens per sample)."""
    generated_completion_tokens: int | None = None
    """Completion tokens the engine generated, each shared sample once (the sample cache); the
    completion total of ``call_totals`` counts them per unit (attributed). None: not read."""
