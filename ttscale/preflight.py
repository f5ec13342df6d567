"""Fail fast: check a request's model, input, credentials and endpoint before anything heavy starts.

Each check is cheap (no Prefect, no engine start-up) and raises the typed error whose exit code
the README documents, so a bad request costs seconds, not a model load.
"""

from __future__ import annotations

import os
from dataclasses import replace

from ttscale.engines.config import EngineConfig, OpenAIEngineConfig, VLLMEngineConfig
from ttscale.errors import ConfigError, EngineDeadError
from ttscale.inputs import LoadedBatch, load_batch
from ttscale.schemas import BatchRequest

ENDPOINT_TIMEOUT_S = 3.0
"""How long an OpenAI-compatible endpoint may take to answer ``/models`` before it counts as down."""


def preflight(request: BatchRequest) -> LoadedBatch:
    """Every check a run needs before it starts; returns the loaded input (read once here)."""
    from ttscale.storage import check_credentials

    check_credentials(request.input_uri, request.output_uri)
    batch = load_batch(request.input_uri)
    check_scorers(request)
    check_engine(request.engine)
    check_ledger_path(request.ledger_path)
    return batch


def check_scorers(request: BatchRequest) -> None:
    """A live run cannot score with ``stored`` (an imported pool's scores, replay only): refuse it
    here, before any generation, rather than at the first sample scored."""
    for config in request.strategies.configs():
        scorer = getattr(config, "scorer", None)
        if scorer is not None and scorer.kind == "stored":
            raise ConfigError(
                f"strategy {config.kind}: scorer 'stored' reads the scores stored with an imported "
                "pool and works only with `ttscale replay`; choose mean_logprob, self_certainty "
                "or reward_model for a run"
            )


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
    """The ledger can be written, before any generation: a SQLite catalog's folder and the data
    path are writable (a new lake is not created here); a server catalog answers (unreachable,
    wrong password: ``LedgerError``, exit 7, one line) and an object-store data path accepts a
    write with the lake's own credentials."""
    from ttscale.ledger.lake import (
        check_catalog_folder_writable,
        check_data_path_writable,
        connect_lake,
        parse_ledger,
        stored_data_path,
    )

    spec = parse_ledger(path)
    if spec.catalog_file is None:
        with connect_lake(spec) as con:
            if spec.data_path is None:  # a server catalog remembers where its files go
                spec = replace(spec, data_path=stored_data_path(con))
    else:
        check_catalog_folder_writable(spec)
    check_data_path_writable(spec)
