"""Language forcing (Yong et al. 2025): translated Wait, prefix and system prompt; detection."""

from __future__ import annotations

import pytest
from strategy_helpers import CountingEngine, assert_accounted, question, run

from ttscale.strategies.kinds.budget_forcing import BudgetForcingConfig
from ttscale.strategies.language import (
    LANGUAGE_NAMES,
    THINKING_PREFIX,
    WAIT,
    detect_language,
    forcing_for,
)


def _forced(mode: str, language: str = "de") -> tuple[dict, CountingEngine]:
    engine = CountingEngine(accuracy=1.0)
    config = BudgetForcingConfig(budgets_tokens=[2000], extensions=1, language_forcing=mode)
    record = run(engine, config, 2000, question(0, language=language))
    assert_accounted(record, engine)
    return record, engine


def test_all_levers_reach_the_prompts() -> None:
    record, engine = _forced("all")
    first, extension = engine.prompts[0], engine.prompts[1]
    assert "<|system|>" in first and "Think and answer only in German." in first
    assert first.endswith(THINKING_PREFIX["de"])
    assert extension.endswith(" Warte")
    # The scripted model ignores the forcing and thinks in English filler ("so", "then", ...):
    # the detected language is the one written, not the one asked for (nor the German prefix).
    thinking = [c["completion_text"] for c in record["calls"] if c["phase"] != "answer"]
    assert all(text.startswith("Let me think.") for text in thinking)
    assert record["answered_language"] == "en"


class GermanEngine(CountingEngine):
    """Thinks in German: "Das ist die Summe, und sie ist nicht schwer." then the answer line."""

    def _script(self, prompt: str, seed: int) -> str:
        text = super()._script(prompt, seed)
        if prompt.rstrip().endswith("Final Answer:"):
            return text
        return "Das ist die Summe, und sie ist nicht schwer.\n" + text.rsplit("\n", 1)[-1]


def test_answered_language_is_the_language_written() -> None:
    engine = GermanEngine(accuracy=1.0)
    config = BudgetForcingConfig(budgets_tokens=[2000], extensions=1, language_forcing="none")
    record = run(engine, config, 2000, question(0, language="de"))
    assert_accounted(record, engine)
    assert record["calls"][0]["completion_text"].startswith("Das ist die Summe")
    assert record["answered_language"] == "de"  # das, die, und, sie, ist, nicht: German


@pytest.mark.parametrize(
    ("mode", "system", "prefix", "wait"),
    [
        ("none", False, False, False),
        ("wait", False, False, True),
        ("prefix", False, True, False),
        ("system", True, False, False),
    ],
)
def test_each_lever_alone(mode: str, system: bool, prefix: bool, wait: bool) -> None:
    _, engine = _forced(mode, "ja")
    first, extension = engine.prompts[0], engine.prompts[1]
    assert ("Think and answer only in Japanese." in first) is system
    assert (THINKING_PREFIX["ja"] in first) is prefix
    assert extension.endswith(" " + (WAIT["ja"] if wait else "Wait"))


def test_every_language_has_all_three_translations() -> None:
    assert set(WAIT) == set(THINKING_PREFIX) == set(LANGUAGE_NAMES)
    assert len(LANGUAGE_NAMES) == 11
    for language in LANGUAGE_NAMES:
        forcing = forcing_for("all", language, "Wait")
        assert forcing.wait_text == WAIT[language]
        assert LANGUAGE_NAMES[language] in forcing.system_extra


def test_unknown_language_falls_back_to_english_levers() -> None:
    forcing = forcing_for("all", "xx", "Wait")
    assert (forcing.system_extra, forcing.thinking_prefix, forcing.wait_text) == ("", "", "Wait")


@pytest.mark.parametrize(
    ("text", "language"),
    [
        ("Давай я подумаю шаг за шагом, ответ 5.", "ru"),
        ("让我一步一步地思考。答案是五。", "zh"),
        ("段階的に考えてみます。答えは5です。", "ja"),
        ("ให้ฉันคิดทีละขั้นตอน", "th"),
        ("Lass mich nachdenken, die Antwort ist nicht 4 und das ist klar.", "de"),
        ("So the answer is 5 and that is all.", "en"),
        ("Acha nifikirie hatua kwa hatua, jumla ni 5 na kila kitu.", "sw"),
        ("42", None),
    ],
)
def test_detect_language(text: str, language: str | None) -> None:
    assert detect_language(text) == language
