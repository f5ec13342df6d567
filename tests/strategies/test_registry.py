"""Adding a strategy is adding one module: it then shows up everywhere a kind is listed.

The proof runs in a subprocess on a copy of the package with one extra file in
``ttscale/strategies/kinds/``: no other file is touched, and the new kind must parse as a
``--strategy`` spec, appear in the run form's JSON schema, run, replay, and carry its budget
unit into the report's saturation labels, while existing run ids stay as they were.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from ttscale.strategies import STRATEGIES, registry
from ttscale.strategies.config import SampleCountConfigBase
from ttscale.strategies.kinds import names
from ttscale.strategies.strategy_set import StrategySet

REPO = Path(__file__).resolve().parents[2]

NEW_KIND = '''
"""First answer: N samples, the answer of the earliest sample that has one."""

from __future__ import annotations

from typing import Literal

from pydantic import ConfigDict, Field

from ttscale.strategies.base import Outcome, StopReason, StrategyContext
from ttscale.strategies.config import SampleCountConfigBase
from ttscale.strategies.kinds import names
from ttscale.strategies.registry import BudgetUnit, strategy
from ttscale.strategies.sampling import LiveSampler


class FirstAnswerConfig(SampleCountConfigBase):
    """First answer: N samples, the earliest answered one wins."""

    model_config = ConfigDict(title="First answer")

    kind: Literal["first_answer"] = Field("first_answer", title="Strategy kind")


@strategy(FirstAnswerConfig, order=900, budget=BudgetUnit("draws", parallel=True))
async def first_answer(ctx: StrategyContext, config: FirstAnswerConfig) -> Outcome:
    samples = await LiveSampler(ctx, config).draw(range(ctx.budget))
    answers = [s.answer for s in samples if s.answer is not None]
    return Outcome(answers[0] if answers else None, StopReason.BUDGET_REACHED, len(samples))
'''

PROBE = """
import asyncio, json, sys

import ttscale
from pydantic import TypeAdapter

from ttscale.analysis.saturation import strategy_unit
from ttscale.cli.specs import parse_strategy
from ttscale.engines.config import ScriptedEngineConfig
from ttscale.engines.scripted import ScriptedEngine
from ttscale.prompts import PROFILES
from ttscale.runner import Unit, attempt_unit
from ttscale.schemas import BatchRequest, Question
from ttscale.strategies import registry
from ttscale.strategies.config import StrategyConfig
from ttscale.strategies.replay import SamplePool, replay

config = TypeAdapter(StrategyConfig).validate_python(parse_strategy("first_answer:n=1,2,4"))
form = BatchRequest.model_json_schema()["$defs"]["StrategySet"]["properties"]
chosen = [
    BatchRequest.model_validate({"input_uri": "in.jsonl", "strategies": strategies})
    for strategies in ({"first_answer": {"n": [2]}}, [{"kind": "first_answer", "n": [2]}])
]
questions = [
    Question(id=f"q{i}", question=f"What is {i} plus 3?", answer=str(i + 3), dataset="arithmetic")
    for i in range(4)
]


async def live(kind_config, budget):
    engine = ScriptedEngine(ScriptedEngineConfig(accuracy=0.5))
    unit = Unit(kind_config.kind, budget, kind_config)
    return [
        (await attempt_unit(engine, PROFILES["plain"], q, unit, "r", 3)).to_json()
        for q in questions
    ]


pool_config = registry.get("majority").config.model_validate({"n": [4]})
pool = SamplePool.from_records("r", asyncio.run(live(pool_config, 4)), questions)
json.dump(
    {
        "package": ttscale.__file__,
        "config": [type(config).__name__, config.budgets()],
        "kinds": registry.kinds(),
        "form_tab": form.get("first_answer"),
        "chosen": [[c.kind for c in r.strategies.configs()] for r in chosen],
        "live": [r["final_answer"] for r in asyncio.run(live(config, 4))],
        "replayed": [r.final_answer for r in replay(config, pool, 4)],
        "unit": strategy_unit("first_answer"),
        "default_run_id": BatchRequest(input_uri="in.jsonl").resolved_run_id(),
    },
    sys.stdout,
)
"""


def _probe(package_root: Path) -> dict:
    env = os.environ | {"PYTHONPATH": str(package_root)}
    done = subprocess.run(
        [sys.executable, "-c", PROBE],
        cwd=package_root,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_a_new_strategy_module_is_the_only_change_needed(tmp_path: Path) -> None:
    shutil.copytree(
        REPO / "ttscale", tmp_path / "ttscale", ignore=shutil.ignore_patterns("__pycache__")
    )
    (tmp_path / "ttscale" / "strategies" / "kinds" / "first_answer.py").write_text(NEW_KIND)
    seen = _probe(tmp_path)
    assert seen["package"] == str(tmp_path / "ttscale" / "__init__.py")
    assert seen["config"] == ["FirstAnswerConfig", [1, 2, 4]]
    assert seen["kinds"] == [*registry.kinds(), "first_answer"]
    assert seen["form_tab"]["title"] == "First answer"
    assert seen["form_tab"]["default"] is None  # off unless chosen
    # The run form's mapping keeps the kinds that are on by default; the list form runs only it.
    assert seen["chosen"] == [["majority", "budget_forcing", "first_answer"], ["first_answer"]]
    assert seen["replayed"] == seen["live"]
    assert any(answer is not None for answer in seen["live"])
    assert seen["unit"] == ["parallel", 1.0, "draws"]
    # The new kind is off by default, so requests that do not name it keep their run ids.
    from ttscale.schemas import BatchRequest

    assert seen["default_run_id"] == BatchRequest(input_uri="in.jsonl").resolved_run_id()


def test_the_run_form_and_the_runner_follow_the_registry() -> None:
    entries = registry.entries()
    assert list(StrategySet.model_fields) == [e.kind for e in entries]
    assert [f.title for f in StrategySet.model_fields.values()] == [e.label for e in entries]
    on = [name for name, value in StrategySet() if value is not None]
    assert on == [e.kind for e in entries if e.enabled_by_default]
    assert {kind: STRATEGIES[kind] for kind in registry.kinds()} == {e.kind: e.run for e in entries}
    # One module per kind, named after it, so the CLI can list kinds without importing them.
    assert sorted(e.kind for e in entries) == names()
    assert all(e.run.__module__ == f"ttscale.strategies.kinds.{e.kind}" for e in entries)


def test_registering_after_the_models_are_built_is_refused() -> None:
    class LateConfig(SampleCountConfigBase):
        kind: str = "late"

    async def late(ctx: object, config: object) -> object:
        raise AssertionError("never run")

    with pytest.raises(RuntimeError, match="strategies/kinds/"):
        registry.register(LateConfig, late, order=999)  # type: ignore[arg-type]
    assert "late" not in registry.kinds()


@pytest.mark.parametrize(
    "module",
    [
        "ttscale.strategies.base",
        "ttscale.strategies.config",
        "ttscale.strategies.registry",
        "ttscale.strategies.kinds.majority",
        "ttscale.strategies.replay",
        "ttscale.schemas",
    ],
)
def test_any_module_can_be_imported_first(module: str) -> None:
    # Kinds load lazily, on first use: whichever module a program imports first, the registry
    # must fill without an import cycle.
    probe = f"import {module}\nfrom ttscale.strategies import STRATEGIES\nprint(len(STRATEGIES))"
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert int(done.stdout) == len(registry.kinds())
