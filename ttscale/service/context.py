"""A run resolved once: its request, id, opened stores, layout, units and engine settings.

Every step of a run (plan, shards, ingest, report) takes the ``RunContext`` that ``resolve_run``
builds at the start, instead of parsing the request's URIs again.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

from ttscale.engines import EngineConfig, model_name
from ttscale.inputs import InputLocation, open_input
from ttscale.model_prep import ttscale_home
from ttscale.prompts import ModelProfile, resolve_profile
from ttscale.runner import Unit, expand_units
from ttscale.schemas import BatchRequest
from ttscale.service.calibration import with_calibration
from ttscale.service.layout import RunLayout
from ttscale.storage import LocalStore, ObjectStore, open_store


@dataclass(frozen=True)
class RunContext:
    """What every step of one run shares. Build it with ``resolve_run``."""

    request: BatchRequest
    run_id: str
    output: ObjectStore
    """The store the run's objects go to."""
    layout: RunLayout
    """The run's keys in ``output``."""
    input: InputLocation
    units: tuple[Unit, ...] = field(default=())
    """One per strategy × budget, in the request's order."""

    @property
    def engine(self) -> EngineConfig:
        return self.request.engine

    @property
    def ledger_path(self) -> str:
        return self.request.ledger_path

    @cached_property
    def profile(self) -> ModelProfile:
        """The prompt profile of the engine's model; resolved where a shard first needs it."""
        return resolve_profile(self.engine.profile, model_name(self.engine))

    def log_path(self) -> Path:
        """Where a local run's library logs go: ``run.log`` next to its objects for a local
        output, ``$TTSCALE_HOME/logs/<run_id>.log`` otherwise."""
        if isinstance(self.output, LocalStore):
            return self.output.root.expanduser() / self.layout.run_log
        return ttscale_home() / "logs" / f"{self.run_id}.log"


def resolve_run(request: BatchRequest) -> RunContext:
    """Resolve ``request`` into its run: the run id, the opened stores and the run's layout.

    Writes nothing, and reads nothing unless a strategy names a calibration run: then that
    run's scores are read from the ledger into the request (``with_calibration``), before the
    run id, which they are part of.
    """
    request = with_calibration(request)
    run_id = request.resolved_run_id()
    output, output_prefix = open_store(request.output_uri)
    return RunContext(
        request=request,
        run_id=run_id,
        output=output,
        layout=RunLayout.of(output_prefix, run_id),
        input=open_input(request.input_uri),
        units=tuple(expand_units(request.strategies.configs())),
    )
