"""Language forcing for crosslingual test-time scaling (Yong et al. 2025, MGSM's 11 languages).

Three levers, alone or together: a translated "Wait" for extensions, a translated thinking
prefix, and a system prompt asking to think and answer only in the question's language. The
language the model actually wrote in is detected from Unicode scripts and, for Latin-script
languages, from common function words.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

LANGUAGE_NAMES = {
    "bn": "Bengali", "de": "German", "en": "English", "es": "Spanish", "fr": "French",
    "ja": "Japanese", "ru": "Russian", "sw": "Swahili", "te": "Telugu", "th": "Thai",
    "zh": "Chinese",
}  # fmt: skip

WAIT = {
    "bn": "অপেক্ষা করো", "de": "Warte", "en": "Wait", "es": "Espera", "fr": "Attends",
    "ja": "待って", "ru": "Подожди", "sw": "Subiri", "te": "ఆగండి", "th": "เดี๋ยวก่อน",
    "zh": "等等",
}  # fmt: skip

THINKING_PREFIX = {
    "bn": "আমাকে ধাপে ধাপে চিন্তা করতে দাও।", "de": "Lass mich Schritt für Schritt nachdenken.",
    "en": "Let me think step by step.", "es": "Déjame pensar paso a paso.",
    "fr": "Laisse-moi réfléchir étape par étape.", "ja": "段階的に考えてみます。",
    "ru": "Давай я подумаю шаг за шагом.", "sw": "Acha nifikirie hatua kwa hatua.",
    "te": "నేను దశలవారీగా ఆలోచిస్తాను.", "th": "ให้ฉันคิดทีละขั้นตอน",
    "zh": "让我一步一步地思考。",
}  # fmt: skip

# Script ranges identify most MGSM languages outright; kana tells Japanese from Chinese.
_SCRIPTS: tuple[tuple[str, str], ...] = (
    ("bn", "\u0980-\u09ff"),
    ("te", "\u0c00-\u0c7f"),
    ("th", "\u0e00-\u0e7f"),
    ("ru", "\u0400-\u04ff"),
    ("ja", "\u3040-\u30ff"),
    ("zh", "\u4e00-\u9fff"),
)
_LATIN_WORDS = {
    "en": {"the", "and", "is", "of", "to", "so", "we", "that", "has", "are"},
    "de": {"der", "die", "das", "und", "ist", "nicht", "wir", "hat", "sie", "mit"},
    "es": {"el", "la", "los", "las", "y", "es", "que", "por", "tiene", "del"},
    "fr": {"le", "la", "les", "et", "est", "que", "des", "une", "pour", "donc"},
    "sw": {"na", "ya", "wa", "kwa", "ni", "za", "katika", "hivyo", "kila", "jumla"},
}


def detect_language(text: str) -> str | None:
    """The MGSM language ``text`` is mostly written in, or None when too little text to tell."""
    counts = {lang: len(re.findall(f"[{chars}]", text)) for lang, chars in _SCRIPTS}
    if counts["ja"] and counts["zh"]:
        counts["ja"] += counts.pop("zh")  # Japanese mixes kanji with kana.
    best = max(counts, key=lambda k: counts[k])
    if counts[best] >= 3:
        return best
    words = re.findall(r"[a-zà-ÿ]+", text.lower())
    hits = {lang: sum(w in vocab for w in words) for lang, vocab in _LATIN_WORDS.items()}
    latin = max(hits, key=lambda k: hits[k])
    return latin if hits[latin] >= 2 else None


@dataclass(frozen=True)
class LanguageForcing:
    """What a strategy adds to its prompts for one question language."""

    system_extra: str
    thinking_prefix: str
    wait_text: str
    detect: Callable[[str, str], str | None]


def _detect(answer_text: str, thinking_text: str) -> str | None:
    return detect_language(thinking_text + "\n" + answer_text)


def forcing_for(mode: str, language: str, default_wait: str) -> LanguageForcing:
    """The forcing levers of ``mode`` ('none', 'wait', 'prefix', 'system' or 'all')."""
    use = {"wait", "prefix", "system"} if mode == "all" else {mode}
    name = LANGUAGE_NAMES.get(language)
    return LanguageForcing(
        system_extra=f"Think and answer only in {name}." if "system" in use and name else "",
        thinking_prefix=THINKING_PREFIX.get(language, "") if "prefix" in use else "",
        wait_text=WAIT.get(language, default_wait) if "wait" in use else default_wait,
        detect=_detect,
    )
