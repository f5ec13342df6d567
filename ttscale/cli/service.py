"""Commands that run the service: serve deployments, start a Prefect server."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from ttscale.cli.app import app, fail, guarded
from ttscale.cli.run import build_request


@app.command()
def serve(
    config: Annotated[
        Path | None,
        typer.Option(help="BatchRequest (YAML/JSON) for the nightly run; default: the demo."),
    ] = None,
    cron: Annotated[str, typer.Option(help="Nightly schedule (cron, UTC).")] = "0 2 * * *",
    gpu_slots: Annotated[
        str, typer.Option(help="Global concurrency limit shard runs take a slot of ('' = none).")
    ] = "gpu-slots",
    limit: Annotated[
        int | None,
        typer.Option(help="Most flow runs at once. A batch waits on its shard runs: leave room."),
    ] = None,
) -> None:
    """Serve ttscale-batch/nightly-local, ttscale-batch/adhoc-local and ttscale-shard/gpu-local here.

    Runs their scheduled and triggered flow runs in this process until Ctrl-C (no work pool).

    Needs a Prefect server (`ttscale server`) and PREFECT_API_URL pointing at it.

    The -local names keep them apart from `prefect deploy`'s (prefect.yaml: nightly, adhoc, gpu).

    Shards run here when a request sets shard_deployment to ttscale-shard/gpu-local.

    Examples:

      PREFECT_API_URL=http://127.0.0.1:4200/api ttscale serve

      ttscale serve --config nightly.yaml --cron "30 1 * * *"
    """
    _require_api_url()
    _serve(config, cron, gpu_slots, limit)


def _require_api_url() -> None:
    """Without an API URL Prefect would start a throwaway ephemeral server in this process: the
    deployments would vanish with it and no UI, CLI or REST client could reach them."""
    from prefect.settings import get_current_settings

    if not get_current_settings().api.url:
        raise fail("PREFECT_API_URL is not set: start `ttscale server` and export it", 2)


@guarded
def _serve(config: Path | None, cron: str, gpu_slots: str, limit: int | None) -> None:
    """Check the nightly request here, then become ``python -m flows.deployments``.

    The command does not import the Prefect flows (they sit above it, on the service): it
    replaces this process with their module, so a signal meant for ``ttscale serve`` (Ctrl-C, a
    supervisor's SIGTERM) reaches the serving process itself.
    """
    import os

    from ttscale.cli.demo import demo_request

    nightly = build_request(config, {}, None, None) if config else demo_request()
    command = [sys.executable, "-m", "flows.deployments", "--nightly", nightly.model_dump_json()]
    command += ["--cron", cron, "--gpu-slots", gpu_slots]
    if limit is not None:
        command += ["--limit", str(limit)]
    sys.stdout.flush()
    sys.stderr.flush()
    os.execv(sys.executable, command)


@app.command()
def server(
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port of the API and UI.")] = 4200,
) -> None:
    """Start a local Prefect server (API + UI; SQLite under PREFECT_HOME) in the foreground.

    Example:

      ttscale server   # then open http://127.0.0.1:4200 and export PREFECT_API_URL=http://127.0.0.1:4200/api
    """
    import os
    import subprocess

    env = os.environ | {"PREFECT_SERVER_ANALYTICS_ENABLED": "false"}
    command = [sys.executable, "-m", "prefect", "server", "start", "--host", host]
    raise typer.Exit(subprocess.call([*command, "--port", str(port)], env=env))
