"""Command-line shorthands: strategy specs and key=value settings become validated configs."""

from __future__ import annotations

import pytest
from pydantic import TypeAdapter

from ttscale.cli.specs import parse_key_values, parse_strategy, strategy_classes
from ttscale.errors import ConfigError
from ttscale.strategies.config import StrategyConfig


def test_every_strategy_kind_is_reachable_from_a_spec() -> None:
    kinds = set(strategy_classes())
    assert {"majority", "budget_forcing", "adaptive_consistency", "esc", "optscale"} <= kinds
    for kind in kinds:
        config = TypeAdapter(StrategyConfig).validate_python(parse_strategy(kind))
        assert config.kind == kind


def test_bare_values_continue_the_previous_key_as_a_list() -> None:
    spec = parse_strategy("majority:n=1,2,4,8,temperature=0.5")
    assert spec == {"kind": "majority", "n": [1, 2, 4, 8], "temperature": 0.5}


def test_budget_aliases_name_the_kinds_budget_field() -> None:
    assert parse_strategy("adaptive_consistency:n_max=16,threshold=0.95") == {
        "kind": "adaptive_consistency",
        "n": [16],
        "threshold": 0.95,
    }
    assert parse_strategy("budget_forcing:budgets=64,128")["budgets_tokens"] == [64, 128]
    assert parse_strategy("refinement:budgets=2")["rounds"] == [2]


def test_dotted_keys_nest() -> None:
    spec = parse_strategy("best_of_n:n=4,scorer.kind=mean_logprob")
    assert spec["scorer"] == {"kind": "mean_logprob"}


@pytest.mark.parametrize("spec", ["nope:n=1", "majority:1,2", "esc:=3"])
def test_bad_specs_are_config_errors(spec: str) -> None:
    with pytest.raises(ConfigError):
        parse_strategy(spec)


def test_key_values_are_typed_like_yaml() -> None:
    assert parse_key_values(["dtype=bfloat16", "tensor_parallel_size=2", "x=true"], "--e") == {
        "dtype": "bfloat16",
        "tensor_parallel_size": 2,
        "x": True,
    }
    with pytest.raises(ConfigError, match="key=value"):
        parse_key_values(["novalue"], "--engine-arg")


def test_engine_flags_set_engine_settings_and_pass_the_rest_to_vllm() -> None:
    from ttscale.cli.run import _engine_settings, build_request

    engine = _engine_settings(
        None, "Qwen/Qwen2.5-Math-7B-Instruct", "main", None,
        ["dtype=bfloat16", "tensor_parallel_size=2", "quantization=fp8"],
    )  # fmt: skip
    request = build_request(None, {"input_uri": "q.jsonl"}, engine=engine)
    assert request.engine.model == "Qwen/Qwen2.5-Math-7B-Instruct"
    assert request.engine.revision == "main"
    assert (request.engine.dtype, request.engine.tensor_parallel_size) == ("bfloat16", 2)
    assert request.engine.engine_args == {"quantization": "fp8"}


def test_engine_args_may_not_shadow_settings() -> None:
    from pydantic import ValidationError

    from ttscale.engines.config import VLLMEngineConfig

    with pytest.raises(ValidationError, match="set dtype directly"):
        VLLMEngineConfig(engine_args={"dtype": "float16"})
