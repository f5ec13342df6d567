"""diff_policies on hand-built policy dicts: each kind of change, and no change."""

from __future__ import annotations

import copy
from typing import Any

from ttscale.reports.policy_diff import (
    POLICY_DIFF_SCHEMA,
    DiffThresholds,
    diff_policies,
    policy_diff_markdown,
)


def _entry(
    dataset: str,
    language: str = "en",
    strategy: str = "majority",
    budget: int = 4,
    accuracy: float = 0.70,
    ci: tuple[float, float] = (0.62, 0.78),
    tokens: float = 400.0,
    usd: float | None = 0.0008,
) -> dict[str, Any]:
    return {
        "dataset": dataset,
        "language": language,
        "strategy": strategy,
        "budget": budget,
        "expected": {
            "accuracy": accuracy,
            "accuracy_ci": list(ci),
            "confidence": 0.95,
            "tokens_per_item": tokens,
            "usd_per_item": usd,
        },
        "items": 100,
    }


def _withheld(dataset: str, language: str = "en") -> dict[str, Any]:
    return {
        "dataset": dataset,
        "language": language,
        "items": 12,
        "reason": "not enough evidence: too few items",
        "needed": "at least 30 items (has 12)",
    }


def _policy(run_id: str, entries: list[Any], withheld: list[Any] | None = None) -> dict[str, Any]:
    return {
        "schema": "ttscale.policy/v1",
        "run_id": run_id,
        "model": "vllm:/models/x",
        "engine_kind": "vllm",
        "generated_at": "2026-12-01T00:00:00Z",
        "rule": {"name": "marginal_gain", "tau_points_per_1k_tokens": 0.5},
        "prices": {"usd_per_1m_input_tokens": None, "usd_per_1m_output_tokens": 2.0},
        "entries": entries,
        "withheld": withheld or [],
    }


PREVIOUS = _policy("r1", [_entry("gsm8k"), _entry("mgsm", "de")], [_withheld("mgsm", "sw")])


def _kinds(diff: Any) -> dict[str, list[str]]:
    return {f"{s.dataset}/{s.language}": [c.kind for c in s.changes] for s in diff.slices}


def test_no_change_is_no_change() -> None:
    current = copy.deepcopy(PREVIOUS) | {"run_id": "r2", "generated_at": "later"}
    # Small moves inside the CI and under the thresholds are not changes.
    current["entries"][0]["expected"] |= {"accuracy": 0.73, "tokens_per_item": 440.0}
    diff = diff_policies(PREVIOUS, current)
    assert not diff.changed and diff.run_changes == []
    assert _kinds(diff) == {"gsm8k/en": [], "mgsm/de": [], "mgsm/sw": []}
    assert (diff.previous_run_id, diff.current_run_id) == ("r1", "r2")
    data = diff.as_json()
    assert data["schema"] == POLICY_DIFF_SCHEMA and data["changed"] is False
    assert all(s["changed"] is False for s in data["slices"])
    text = policy_diff_markdown(diff, "2026-11-24 02:00 UTC")
    assert text.startswith("## Policy changes since r1 (2026-11-24 02:00 UTC)")
    assert "No changes" in text and "⚠" not in text


def test_strategy_and_budget_changes_are_named_with_both_recommendations() -> None:
    current = _policy(
        "r2",
        [_entry("gsm8k", strategy="budget_forcing", budget=64), _entry("mgsm", "de", budget=8)],
        [_withheld("mgsm", "sw")],
    )
    diff = diff_policies(PREVIOUS, current)
    assert _kinds(diff) == {"gsm8k/en": ["strategy"], "mgsm/de": ["budget"], "mgsm/sw": []}
    gsm, de, _ = diff.slices
    assert gsm.changes[0].note == "strategy changed majority@4 → budget_forcing@64"
    assert (de.changes[0].before, de.changes[0].after) == (4, 8)
    assert de.recommendation_before == "majority@4" and de.recommendation_after == "majority@8"
    text = policy_diff_markdown(diff)
    assert "⚠ **gsm8k/en**: strategy changed majority@4 → budget_forcing@64" in text
    assert "2 of 3 slices changed" in text and "- mgsm/sw: unchanged (withheld)" in text


def test_accuracy_outside_the_previous_ci_or_by_the_threshold() -> None:
    current = copy.deepcopy(PREVIOUS) | {"run_id": "r2"}
    current["entries"][0]["expected"]["accuracy"] = 0.80  # outside 62–78 %
    wide = current["entries"][1]["expected"]
    previous_wide = copy.deepcopy(PREVIOUS)
    previous_wide["entries"][1]["expected"]["accuracy_ci"] = [0.40, 0.95]
    wide["accuracy"] = 0.81  # inside the wide CI, but 11 points
    diff = diff_policies(previous_wide, current)
    assert _kinds(diff) == {"gsm8k/en": ["accuracy"], "mgsm/de": ["accuracy"], "mgsm/sw": []}
    assert "outside the previous CI 62.0%–78.0%" in diff.slices[0].changes[0].note
    assert "large move" in diff.slices[1].changes[0].note
    # A looser threshold lets the wide slice (inside its CI) pass.
    loose = diff_policies(previous_wide, current, DiffThresholds(accuracy_points=0.2))
    assert _kinds(loose)["mgsm/de"] == []


def test_tokens_and_usd_per_item_beyond_the_relative_threshold() -> None:
    current = copy.deepcopy(PREVIOUS) | {"run_id": "r2"}
    current["entries"][0]["expected"] |= {"tokens_per_item": 600.0, "usd_per_item": 0.0012}
    current["entries"][1]["expected"] |= {"usd_per_item": None}  # no price now: not compared
    diff = diff_policies(PREVIOUS, current)
    assert _kinds(diff)["gsm8k/en"] == ["tokens_per_item", "usd_per_item"]
    assert diff.slices[0].changes[0].note == "tokens/item 400 → 600 (+50%)"
    assert _kinds(diff)["mgsm/de"] == []
    assert (
        _kinds(diff_policies(PREVIOUS, current, DiffThresholds(cost_change=0.6)))["gsm8k/en"] == []
    )


def test_newly_withheld_newly_recommended_added_and_removed_slices() -> None:
    current = _policy(
        "r2",
        [_entry("mgsm", "sw", budget=2), _entry("mgsm", "fr")],
        [_withheld("gsm8k")],
    )
    diff = diff_policies(PREVIOUS, current)
    assert _kinds(diff) == {
        "gsm8k/en": ["newly_withheld"],
        "mgsm/de": ["removed"],
        "mgsm/fr": ["added"],
        "mgsm/sw": ["newly_recommended"],
    }
    by = {f"{s.dataset}/{s.language}": s for s in diff.slices}
    assert (by["mgsm/de"].before, by["mgsm/de"].after) == ("recommended", "absent")
    assert (by["mgsm/fr"].before, by["mgsm/fr"].after) == ("absent", "recommended")
    assert by["gsm8k/en"].changes[0].note.startswith("newly withheld: was majority@4, now not")
    assert by["mgsm/sw"].changes[0].after == "majority@2"


def test_run_wide_changes_and_the_first_run_section() -> None:
    current = copy.deepcopy(PREVIOUS) | {"run_id": "r2", "model": "vllm:/models/y"}
    diff = diff_policies(PREVIOUS, current)
    assert [c.kind for c in diff.run_changes] == ["model"] and diff.changed
    assert "⚠ model changed vllm:/models/x → vllm:/models/y" in policy_diff_markdown(diff)
    first = policy_diff_markdown(None)
    assert "First run of its kind: nothing to compare" in first


def test_untrusted_slice_names_are_escaped_in_markdown() -> None:
    previous = _policy("r1", [_entry("<b>x|y</b>")])
    current = _policy("r2", [_entry("<b>x|y</b>", budget=8)])
    text = policy_diff_markdown(diff_policies(previous, current))
    assert "<b>" not in text and "&lt;b&gt;x&#124;y" in text
