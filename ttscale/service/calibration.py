"""Fill in what the calibration runs that a request's strategies name hand them: scores, or
labelled samples for a verifier gate with ``calibrate="match_majority"``."""

from __future__ import annotations

from typing import Any

from ttscale.ledger.calibration import calibrated
from ttscale.schemas import BatchRequest


def with_calibration(request: BatchRequest) -> BatchRequest:
    """``request`` with each strategy that names a ``calibration_run`` but holds nothing from it
    yet given what that run hands it (``ledger.calibration.calibrated``), read from the
    request's ledger.

    The request is returned unchanged (and nothing is read) when no strategy names one.
    """
    updates: dict[str, Any] = {}
    for name in type(request.strategies).model_fields:
        config = getattr(request.strategies, name)
        if config is None:
            continue
        filled = calibrated(config, request.ledger_path)
        if filled is not config:
            updates[name] = filled
    if not updates:
        return request
    strategies = request.strategies.model_copy(update=updates)
    return request.model_copy(update={"strategies": strategies})
