"""Evidence guards: when a slice's data cannot support a recommendation, say why and what would.

A recommendation is withheld when the slice has too few items, when its best accuracy is near
zero, or when every configuration is statistically indistinguishable (the paired bootstrap
interval of best − worst accuracy reaches zero).
"""

from __future__ import annotations

import math

import numpy as np
from pydantic import BaseModel, ConfigDict

NOT_ENOUGH = "not enough evidence"


class EvidenceVerdict(BaseModel):
    """Why a slice gets no recommendation, and what would let it have one."""

    model_config = ConfigDict(frozen=True)

    reason: str
    needed: str


def evidence_verdict(
    items: int,
    configs: list[tuple[str, int]],
    accuracy: np.ndarray,
    boot_accuracy: np.ndarray,
    min_items: int,
    min_accuracy: float,
    confidence: float,
) -> EvidenceVerdict | None:
    """None when the slice supports a recommendation; otherwise the reason and what is needed.

    ``accuracy`` holds one point estimate per config; ``boot_accuracy`` is resamples × configs,
    paired over items (the report's bootstrap).
    """
    largest = ", ".join(
        f"{s}@{max(b for t, b in configs if t == s)}" for s in sorted({s for s, _ in configs})
    )
    if items < min_items:
        return EvidenceVerdict(
            reason=f"{NOT_ENOUGH}: {items} items, fewer than the {min_items} a recommendation needs",
            needed=f"at least {min_items} items (has {items})",
        )
    best, worst = int(np.argmax(accuracy)), int(np.argmin(accuracy))
    if accuracy[best] < min_accuracy:
        return EvidenceVerdict(
            reason=f"{NOT_ENOUGH}: accuracy is near zero (best {100 * accuracy[best]:.1f}%, "
            f"below {100 * min_accuracy:.1f}%)",
            needed=f"budgets beyond the largest tried ({largest}), or another model or prompt",
        )
    if len(configs) < 2:
        return EvidenceVerdict(
            reason=f"{NOT_ENOUGH}: one configuration, nothing to compare it with",
            needed="two or more budgets",
        )
    diff = boot_accuracy[:, best] - boot_accuracy[:, worst]
    diff = diff[np.isfinite(diff)]
    tail = (1 - confidence) / 2 * 100
    low, high = (float(v) for v in np.percentile(diff, [tail, 100 - tail]))
    if low > 0:
        return None
    gap = float(accuracy[best] - accuracy[worst])
    name = f"{configs[best][0]}@{configs[best][1]}", f"{configs[worst][0]}@{configs[worst][1]}"
    reason = (
        f"{NOT_ENOUGH}: every configuration is statistically indistinguishable (best "
        f"{name[0]} − worst {name[1]}: {100 * gap:+.1f} pts, {confidence:.0%} CI "
        f"{100 * low:+.1f} to {100 * high:+.1f})"
    )
    if gap > 0:
        # The interval narrows as 1/√items: this many would keep its lower end above zero.
        half = (high - low) / 2
        need = math.ceil(items * (half / gap) ** 2) + 1
        needed = f"about {need} items to tell {name[0]} from {name[1]}, or wider-spaced budgets"
    else:
        needed = f"wider-spaced budgets (beyond {largest}) or more items"
    return EvidenceVerdict(reason=reason, needed=needed)
