"""Rebuild the bundled demo batch and samples from the public sets.

Usage: ``python ttscale/data/make_demo.py PATH/TO/shared/data`` (the folder described in
ATTRIBUTION.md). The output is deterministic: the arithmetic questions come from
`ttscale.datasets.DEMO_SEED`, and the copied questions are the shortest ones by character count
(ties broken by id), so re-running it reproduces the committed files byte for byte.
"""

from __future__ import annotations

import sys
from pathlib import Path

from ttscale.datasets import (
    DEMO_PATH,
    MGSM_LANGUAGES,
    SAMPLES_DIR,
    arithmetic_questions,
    load_dataset,
    write_jsonl,
)
from ttscale.schemas import Question


def _shortest(questions: list[Question], count: int) -> list[Question]:
    return sorted(questions, key=lambda question: (len(question.question), question.id))[:count]


def main(source: Path) -> None:
    gsm8k = load_dataset("gsm8k", source / "gsm8k")
    demo = arithmetic_questions()
    demo += _shortest(gsm8k, 4)
    for language in ("es", "de"):
        demo += _shortest(load_dataset("mgsm", source / "mgsm", language=language), 2)
    write_jsonl(demo, DEMO_PATH)

    write_jsonl(gsm8k[:50], SAMPLES_DIR / "gsm8k-50.jsonl")
    for language in MGSM_LANGUAGES:
        sample = load_dataset("mgsm", source / "mgsm", language=language, limit=10)
        write_jsonl(sample, SAMPLES_DIR / f"mgsm-{language}-10.jsonl")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
