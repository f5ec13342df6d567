"""``ttscale replay-probes``: probe a stored run's thinking traces offline under other settings.

The run's own request names its engine, prompt profile, seed and the unit's language forcing;
only probe (and forced-answer) generation runs, no new thinking.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from ttscale.engines import create_engine, model_name
from ttscale.errors import ConfigError
from ttscale.ledger.trace_readers import stored_traces
from ttscale.prompts import resolve_profile
from ttscale.schemas import BatchRequest, Question
from ttscale.strategies.probe_replay import (
    OfflineProbeResult,
    OfflineProbeSettings,
    probe_stored_trace,
)


def replay_probes_from_ledger(
    ledger: str | Path,
    run_id: str,
    strategy: str,
    budget: int,
    *,
    probe_every: int,
    k: int,
    cap: int | None = None,
    probe_max_tokens: int = 16,
    answer_max_tokens: int = 32,
) -> list[OfflineProbeResult]:
    """Every answered item of the unit ``strategy``@``budget`` of ``run_id``, its stored trace
    probed every ``probe_every`` tokens until ``k`` probes agree (or at ``cap``, default and at
    most the unit's budget). Raises ``ConfigError`` for an unknown run, unit or settings."""
    if probe_every < 1 or k < 1:
        raise ConfigError(f"--probe-every and --k must be >= 1, got {probe_every} and {k}")
    cap = budget if cap is None else cap
    if not 1 <= cap <= budget:
        raise ConfigError(f"--cap must be in [1, {budget}] (the stored traces' budget), got {cap}")
    stored, rows = stored_traces(ledger, run_id, strategy, budget)
    request = BatchRequest.model_validate(stored)
    unit = next((c for c in request.strategies.configs() if c.kind == strategy), None)
    settings = OfflineProbeSettings(
        probe_every=probe_every,
        k=k,
        cap=cap,
        probe_max_tokens=probe_max_tokens,
        answer_max_tokens=answer_max_tokens,
        language_forcing=str(getattr(unit, "language_forcing", "none")),
    )
    profile = resolve_profile(request.engine.profile, model_name(request.engine))
    questions = [
        Question(
            id=row["item_id"],
            question=row["question"],
            answer=row["gold"],
            language=row["language"],
            dataset=row["dataset"],
        )
        for row in rows
    ]

    async def probe_all() -> list[OfflineProbeResult]:
        engine = await create_engine(request.engine)
        try:
            return list(
                await asyncio.gather(
                    *(
                        probe_stored_trace(
                            engine, profile, q, row["thinking_text"], settings, request.seed
                        )
                        for q, row in zip(questions, rows, strict=True)
                    )
                )
            )
        finally:
            await engine.close()

    return asyncio.run(probe_all())
