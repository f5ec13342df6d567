"""Fail fast: check a request's model, input, credentials and endpoint before anything heavy starts.

Each check is cheap (no Prefect, no engine start-up) and raises the typed error whose exit code
the README documents, so a bad request costs seconds, not a model load.
"""

from __future__ import annotations

import os

from ttscale.engines.config import EngineConfig, OpenAIEngineConfig, VLLMEngineConfig
from ttscale.errors import ConfigError, EngineDeadError, LedgerError
from ttscale.inputs import LoadedBatch, load_batch
from ttscale.schemas import BatchRequest

ENDPOINT_TIMEOUT_S = 3.0
"""How long an OpenAI-compatible endpoint may take to answer ``/models`` before it counts as down."""


def preflight(request: BatchRequest) -> LoadedBatch:
    """Every check a run needs before it starts; returns the loaded input (read once here)."""
    from ttscale.storage import check_credentials

    check_credentials(request.input_uri, request.output_uri)
    batch = load_batch(request.input_uri)
    check_engine(request.engine)
    check_ledger_path(request.ledger_path)
    return batch


def check_engine(engine: EngineConfig) -> None:
    """The model resolves (vLLM) or the endpoint answers and serves the model (OpenAI)."""
    if isinstance(engine, VLLMEngineConfig):
        from ttscale.model_prep import resolve_model

        resolve_model(engine.model)
    elif isinstance(engine, OpenAIEngineConfig):
        check_endpoint(engine)


def check_endpoint(engine: OpenAIEngineConfig) -> None:
    """GET ``/models``: unreachable → EngineDeadError; refused key or unknown model → ConfigError."""
    import httpx

    url = engine.base_url.rstrip("/") + "/models"
    key = os.environ.get(engine.api_key_env)
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    try:
        response = httpx.get(url, headers=headers, timeout=ENDPOINT_TIMEOUT_S)
    except httpx.HTTPError as exc:
        raise EngineDeadError(
            f"engine endpoint {url} is unreachable: {type(exc).__name__}"
        ) from None
    if response.status_code in (401, 403):
        raise ConfigError(
            f"engine endpoint {url} refused the API key (HTTP {response.status_code}); "
            f"set {engine.api_key_env}"
        )
    if response.status_code >= 500:
        raise EngineDeadError(f"engine endpoint {url} answered HTTP {response.status_code}")
    if response.status_code >= 400:
        raise ConfigError(f"engine endpoint {url} answered HTTP {response.status_code}")
    try:
        served = [m["id"] for m in response.json().get("data", [])]
    except (ValueError, AttributeError, KeyError, TypeError):
        raise ConfigError(f"engine endpoint {url} did not answer an OpenAI model list") from None
    if engine.model not in served:
        raise ConfigError(
            f"engine endpoint {url} does not serve model {engine.model!r}; it serves: "
            + (", ".join(served) or "nothing")
        )


def check_ledger_path(path: str) -> None:
    """The ledger can be opened: a SQLite catalog's folder exists or can be created and is
    writable; a server catalog (and its data path) answers now, before any generation."""
    from ttscale.ledger.lake import connect_lake, parse_ledger

    spec = parse_ledger(path)
    if spec.catalog_file is None:
        connect_lake(spec).close()  # LedgerError (exit 7) names what is wrong, in one line
        return
    folder = spec.catalog_file.parent
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise LedgerError(f"cannot create the ledger folder {folder}: {exc.strerror}") from None
    if not os.access(folder, os.W_OK):
        raise LedgerError(f"the ledger folder {folder} is not writable")
