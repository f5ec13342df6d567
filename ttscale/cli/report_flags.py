"""The report flags shared by ``ttscale run`` and ``ttscale report``: prices, τ, λ, min items."""

from __future__ import annotations

from typing import Annotated, Any

import typer

PriceIn = Annotated[
    float | None, typer.Option("--price-in", help="USD per 1M input (prompt) tokens.")
]
PriceOut = Annotated[
    float | None,
    typer.Option("--price-out", help="USD per 1M output tokens: fills the report's USD columns."),
]
GpuHour = Annotated[
    float | None,
    typer.Option("--gpu-hour", help="USD per GPU-hour, with the measured throughput."),
]
Tau = Annotated[
    float | None,
    typer.Option("--tau", help="Marginal-gain cutoff, accuracy points per 1k tokens (0.5)."),
]
Lambda = Annotated[
    float | None,
    typer.Option("--lambda", help="Utility cost weight λ, points per 1k tokens."),
]
MinItems = Annotated[
    int | None,
    typer.Option("--min-items", help="Items a slice needs for a recommendation (30)."),
]


def report_options(
    price_in: float | None,
    price_out: float | None,
    gpu_hour: float | None,
    tau: float | None,
    lambda_: float | None,
    min_items: int | None,
) -> dict[str, Any]:
    """The flags given, as ``ReportOptions`` fields (unset flags left out)."""
    given = {
        "price_in": price_in,
        "price_out": price_out,
        "gpu_hour": gpu_hour,
        "tau": tau,
        "lambda_per_1k_tokens": lambda_,
        "min_items": min_items,
    }
    return {k: v for k, v in given.items() if v is not None}
