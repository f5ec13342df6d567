"""What changed between two runs' policies (``policy.json``, ``reports/policy.py``), per slice.

Pure: two policy dicts in, a ``PolicyDiff`` out. A slice (dataset, language) is flagged when

- it was added or removed (present in only one policy);
- it was recommended and is now withheld, or the other way round;
- its recommended strategy or budget changed;
- its expected accuracy moved outside the previous run's confidence interval, or by at least
  ``DiffThresholds.accuracy_points`` (default 10 points: a large move on a small slice, whose
  interval is wide, is still worth a look);
- its expected tokens or USD per item changed by more than ``DiffThresholds.cost_change``
  (default 20 %: less is sampling noise between runs; a budget change usually moves it more).

Run-wide changes (model, prices, the marginal-gain τ) are listed apart, since they explain
slice changes rather than being ones.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from ttscale.reports.markdown import md_text
from ttscale.reports.tables import pct

POLICY_DIFF_SCHEMA = "ttscale.policy-diff/v1"

SliceState = Literal["recommended", "withheld", "absent"]
ChangeKind = Literal[
    "added",
    "removed",
    "newly_withheld",
    "newly_recommended",
    "strategy",
    "budget",
    "accuracy",
    "tokens_per_item",
    "usd_per_item",
    "model",
    "prices",
    "rule",
]


class DiffThresholds(BaseModel):
    """When a move of a number counts as a change."""

    model_config = ConfigDict(frozen=True)

    accuracy_points: float = 0.10
    """Accuracy moves of at least this much (0.10 = 10 points) are flagged even inside the CI."""
    cost_change: float = 0.20
    """Relative change of tokens or USD per item above which it is flagged (0.20 = 20 %)."""


class Change(BaseModel):
    model_config = ConfigDict(frozen=True)

    kind: ChangeKind
    before: Any = None
    after: Any = None
    note: str
    """One line for people, e.g. "strategy changed majority@4 → budget_forcing@64"."""


class SliceDiff(BaseModel):
    model_config = ConfigDict(frozen=True)

    dataset: str
    language: str
    before: SliceState
    after: SliceState
    recommendation_before: str | None = None
    """``strategy@budget`` in the previous policy, if it recommended one."""
    recommendation_after: str | None = None
    changes: list[Change] = []

    @property
    def changed(self) -> bool:
        return bool(self.changes)


class PolicyDiff(BaseModel):
    model_config = ConfigDict(frozen=True)

    schema_: str = POLICY_DIFF_SCHEMA
    previous_run_id: str | None
    current_run_id: str | None
    thresholds: DiffThresholds
    run_changes: list[Change] = []
    slices: list[SliceDiff] = []
    """Every slice of either policy, sorted by (dataset, language)."""

    @property
    def changed(self) -> bool:
        return bool(self.run_changes) or any(s.changed for s in self.slices)

    def as_json(self) -> dict[str, Any]:
        """JSON-ready, ``schema`` first, each slice with its ``changed`` flag."""
        data = self.model_dump(mode="json", exclude={"schema_"})
        for out, s in zip(data["slices"], self.slices, strict=True):
            out["changed"] = s.changed
        return {"schema": self.schema_, "changed": self.changed} | data


def _by_slice(policy: dict[str, Any]) -> dict[tuple[str, str], tuple[SliceState, dict[str, Any]]]:
    slices: dict[tuple[str, str], tuple[SliceState, dict[str, Any]]] = {}
    for w in policy.get("withheld") or []:
        slices[(w["dataset"], w["language"])] = ("withheld", w)
    for e in policy.get("entries") or []:
        slices[(e["dataset"], e["language"])] = ("recommended", e)
    return slices


def _at(entry: dict[str, Any]) -> str:
    return f"{entry['strategy']}@{entry['budget']}"


def _relative(before: float | None, after: float | None) -> float | None:
    if before is None or after is None:
        return None
    if before == 0:
        return None if after == 0 else float("inf")
    return (after - before) / before


def _expected_changes(
    old: dict[str, Any], new: dict[str, Any], thresholds: DiffThresholds
) -> list[Change]:
    changes = []
    acc_old, acc_new = old.get("accuracy"), new.get("accuracy")
    if acc_old is not None and acc_new is not None:
        low, high = (old.get("accuracy_ci") or [None, None])[:2]
        outside = low is not None and high is not None and not low <= acc_new <= high
        if outside or abs(acc_new - acc_old) >= thresholds.accuracy_points:
            why = f"outside the previous CI {pct(low)}–{pct(high)}" if outside else "large move"
            changes.append(
                Change(
                    kind="accuracy",
                    before=acc_old,
                    after=acc_new,
                    note=f"accuracy {pct(acc_old)} → {pct(acc_new)} ({why})",
                )
            )
    for key, fmt in (("tokens_per_item", "{:,.0f}"), ("usd_per_item", "${:.6f}")):
        before, after = old.get(key), new.get(key)
        rel = _relative(before, after)
        if rel is not None and abs(rel) > thresholds.cost_change:
            label = key.replace("_", " ").replace(" per ", "/")
            changes.append(
                Change(
                    kind=key,
                    before=before,
                    after=after,
                    note=f"{label} {fmt.format(before)} → {fmt.format(after)} ({rel:+.0%})",
                )
            )
    return changes


def _slice_diff(
    key: tuple[str, str],
    old: tuple[SliceState, dict[str, Any]] | None,
    new: tuple[SliceState, dict[str, Any]] | None,
    thresholds: DiffThresholds,
) -> SliceDiff:
    before: SliceState = old[0] if old else "absent"
    after: SliceState = new[0] if new else "absent"
    rec_before = _at(old[1]) if old and before == "recommended" else None
    rec_after = _at(new[1]) if new and after == "recommended" else None
    changes: list[Change] = []
    if old is None:
        changes.append(Change(kind="added", after=after, note=f"new slice ({after})"))
    elif new is None:
        changes.append(Change(kind="removed", before=before, note=f"slice gone (was {before})"))
    elif before == "recommended" and after == "withheld":
        reason = new[1].get("reason") or "withheld"
        note = f"newly withheld: was {rec_before}, now {reason}"
        changes.append(Change(kind="newly_withheld", before=rec_before, after=reason, note=note))
    elif before == "withheld" and after == "recommended":
        note = f"newly recommended: {rec_after} (was {old[1].get('reason') or 'withheld'})"
        changes.append(Change(kind="newly_recommended", after=rec_after, note=note))
    elif before == after == "recommended":
        o, n = old[1], new[1]
        if o["strategy"] != n["strategy"]:
            note = f"strategy changed {rec_before} → {rec_after}"
            changes.append(Change(kind="strategy", before=rec_before, after=rec_after, note=note))
        elif o["budget"] != n["budget"]:
            note = f"budget changed {rec_before} → {rec_after}"
            changes.append(Change(kind="budget", before=o["budget"], after=n["budget"], note=note))
        changes += _expected_changes(o.get("expected") or {}, n.get("expected") or {}, thresholds)
    return SliceDiff(
        dataset=key[0],
        language=key[1],
        before=before,
        after=after,
        recommendation_before=rec_before,
        recommendation_after=rec_after,
        changes=changes,
    )


def _run_changes(previous: dict[str, Any], current: dict[str, Any]) -> list[Change]:
    changes = []
    for key in ("model", "prices", "rule"):
        before, after = previous.get(key), current.get(key)
        if before != after:
            note = f"{key} changed {before} → {after}"
            changes.append(Change(kind=key, before=before, after=after, note=note))
    return changes


def diff_policies(
    previous: dict[str, Any], current: dict[str, Any], thresholds: DiffThresholds | None = None
) -> PolicyDiff:
    """What changed from ``previous`` to ``current`` (both ``build_policy`` dicts), per slice."""
    thresholds = thresholds or DiffThresholds()
    old, new = _by_slice(previous), _by_slice(current)
    return PolicyDiff(
        previous_run_id=previous.get("run_id"),
        current_run_id=current.get("run_id"),
        thresholds=thresholds,
        run_changes=_run_changes(previous, current),
        slices=[
            _slice_diff(key, old.get(key), new.get(key), thresholds)
            for key in sorted(old.keys() | new.keys())
        ],
    )


def policy_diff_markdown(diff: PolicyDiff | None, since: str | None = None) -> str:
    """The "Policy changes" section of a run's Markdown artifact.

    ``diff`` None: the run is the first of its kind. ``since`` is the previous run's date.
    """
    if diff is None:
        return "## Policy changes\n\nFirst run of its kind: nothing to compare."
    when = f" ({md_text(since)})" if since else ""
    lines = [f"## Policy changes since {md_text(diff.previous_run_id)}{when}", ""]
    flagged = [s for s in diff.slices if s.changed]
    if not diff.changed:
        lines.append("No changes: every slice keeps its recommendation and expected figures.")
    else:
        lines.append(f"{len(flagged)} of {len(diff.slices)} slices changed.")
    lines.append("")
    lines += [f"- ⚠ {md_text(c.note, 300)}" for c in diff.run_changes]
    for s in diff.slices:
        name = md_text(f"{s.dataset}/{s.language}")
        if s.changed:
            notes = "; ".join(md_text(c.note, 300) for c in s.changes)
            lines.append(f"- ⚠ **{name}**: {notes}")
        else:
            lines.append(f"- {name}: unchanged ({s.recommendation_after or s.after})")
    return "\n".join(lines).rstrip()
