"""`ttscale run`: build a BatchRequest from flags and files, check it, run it, print the results.

The run goes through ``ttscale.service.run_batch`` in this process: no Prefect.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated, Any

import typer

from ttscale.cli.app import LEDGER_HELP, app, fail, guarded, int_list, settings
from ttscale.cli.report_flags import (
    GpuHour,
    Lambda,
    MinItems,
    PriceIn,
    PriceOut,
    Tau,
    report_options,
)
from ttscale.cli.specs import parse_key_values, parse_strategy
from ttscale.cli.terminal import service_logs, terminal_output
from ttscale.strategies.kinds import names as kind_names


def build_request(
    config: Path | None,
    overrides: dict[str, Any],
    majority: list[int] | None = None,
    budgets: list[int] | None = None,
    strategies: list[str] | None = None,
    engine: dict[str, Any] | None = None,
    report: dict[str, Any] | None = None,
) -> Any:
    """A BatchRequest from an optional YAML/JSON file, with command-line flags on top.

    ``--strategy`` specs, ``--majority`` and ``--budgets`` together replace the file's strategies.
    ``engine`` keys are merged into the file's engine settings (a new ``kind`` starts afresh);
    ``report`` keys (prices, τ, λ) into the file's report settings.
    """
    import yaml

    from ttscale.schemas import BatchRequest

    data: dict[str, Any] = {}
    if config is not None:
        if not config.is_file():
            raise fail(f"no such config file: {config}", 2)
        try:
            data = yaml.safe_load(config.read_text(encoding="utf-8")) or {}
        except (yaml.YAMLError, UnicodeDecodeError) as exc:
            raise fail(f"{config}: not valid YAML or JSON ({exc})", 2) from None
        if not isinstance(data, dict):
            raise fail(f"{config}: expected a mapping of BatchRequest fields", 2)
    data |= {k: v for k, v in overrides.items() if v is not None}
    chosen = [parse_strategy(spec) for spec in strategies or []]
    if majority:
        chosen.append({"kind": "majority", "n": majority})
    if budgets:
        chosen.append({"kind": "budget_forcing", "budgets_tokens": budgets})
    if chosen:
        data["strategies"] = chosen
    if engine:
        current = data.get("engine") or {}
        if "kind" in engine and engine["kind"] != current.get("kind", "vllm"):
            current = {}
        data["engine"] = current | engine
    if report:
        data["report"] = (data.get("report") or {}) | report
    return BatchRequest.model_validate(data)


def run_with_progress(ctx: Any, loaded: Any, total_units: int) -> dict[str, Any]:
    """Run the batch in this process with a progress bar (units, tokens, tokens/s)."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from ttscale.service import run_batch

    started = time.monotonic()
    tokens = 0
    with Progress(
        TextColumn("[bold]units"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[tokens]:,} tokens · {task.fields[rate]:,.0f} tok/s"),
        TimeElapsedColumn(),
        console=settings.err_console(),
    ) as bar:
        task_id = bar.add_task("units", total=total_units, tokens=0, rate=0.0)

        def on_progress(units: int, new_tokens: int) -> None:
            nonlocal tokens
            tokens += new_tokens
            rate = tokens / max(time.monotonic() - started, 1e-6)
            bar.update(task_id, advance=units, tokens=tokens, rate=rate)

        return run_batch(ctx, loaded, progress=on_progress)


SMALL_SLICE_ITEMS = 10
"""Slices with fewer items are left out of the terminal tables (their CIs span most of [0, 1]);
the report has them all."""


def print_results(result: dict[str, Any]) -> None:
    """The results table, the recommended cutoffs, and where everything is."""
    from rich import box
    from rich.table import Table

    from ttscale.reports.headline import CUTOFF_HEADER, RESULTS_HEADER

    out = settings.out_console()
    results = result["results"]
    items = {row[0]: int(row[3]) for row in results}
    shown = {name for name, n in items.items() if n >= SMALL_SLICE_ITEMS} or set(items)
    for title, header, rows in (
        ("Results: accuracy with 95% bootstrap CI", RESULTS_HEADER, results),
        ("Recommended cutoffs", CUTOFF_HEADER, result["cutoffs"]),
    ):
        rows = [row for row in rows if row[0] in shown]
        if len(shown) == 1:  # one slice: name it once, in the title
            title, header = f"{title} ({next(iter(shown))})", header[1:]
            rows = [row[1:] for row in rows]
        table = Table(*header, title=title, title_justify="left", box=box.SIMPLE_HEAD)
        for row in rows:
            table.add_row(*row)
        out.print(table)
    hidden = sorted(set(items) - shown)
    if hidden:
        out.print(
            f"{len(hidden)} smaller slices ({', '.join(f'{h}: {items[h]}' for h in hidden)} "
            "items) are in the report only.",
            highlight=False,
            soft_wrap=True,
        )
    totals = result.get("totals", {})
    for line in (
        f"run {result['run_id']}: {result['items']} items, {result['bad_rows']} bad rows "
        f"({result['errors_uri']})",
        f"ledger: {result['ledger']} (+{result['units_added']} units, "
        f"+{result['calls_added']} calls; {totals.get('completion_tokens', 0):,} completion "
        "tokens in this run)",
        *generation_lines(result),
        *(f"report ({kind}): {uri}" for kind, uri in result["report"].items()),
    ):
        out.print(line, highlight=False, soft_wrap=True)


def generation_lines(result: dict[str, Any]) -> list[str]:
    """What the sample cache saved: tokens generated against tokens the units count."""
    generated = result.get("generated") or {}
    attributed = int(result.get("totals", {}).get("completion_tokens") or 0)
    if not generated or not attributed:
        return []
    made = generated["tokens_generated"]
    return [
        f"generated: {made:,} completion tokens for the {attributed:,} the units count "
        f"({1 - made / attributed:.0%} saved; {generated['calls_cached']:,} of "
        f"{generated['calls']:,} calls served from the sample cache)"
    ]


def execute(request: Any) -> dict[str, Any]:
    """Check the request, then run it with logs in a file (or on the terminal with --verbose)."""
    from ttscale.preflight import preflight
    from ttscale.service import resolve_run

    loaded = preflight(request)
    ctx = resolve_run(request)
    items = len(loaded.questions[: request.max_items] if request.max_items else loaded.questions)
    log_path = ctx.log_path()
    # The log keeps fds 1 and 2 to the end of the process: vLLM logs its shutdown at exit.
    # Errors and results still reach the terminal through ``settings``.
    with terminal_output(None if settings.verbose else log_path, restore=False), service_logs():
        result = run_with_progress(ctx, loaded, items * len(ctx.units))
    if not settings.verbose:
        result["log"] = str(log_path)
    return result


STRATEGY_HELP = (
    "A strategy as KIND:key=value,... (repeatable), e.g. majority:n=1,2,4,8 or "
    "adaptive_consistency:n_max=16,threshold=0.95. Kinds: " + ", ".join(kind_names()) + "; "
    "or recommended[:n_max=N] (the recommended adaptive default, README; with a reward model and "
    "a labelled earlier run: recommended:calibration_run=RUN,scorer.kind=KIND,...)."
)


@app.command()
@guarded
def run(
    config: Annotated[Path | None, typer.Option(help="BatchRequest as YAML or JSON.")] = None,
    input_uri: Annotated[
        str | None, typer.Option("--input", help="Questions: s3://, file:// or a path.")
    ] = None,
    output_uri: Annotated[
        str | None, typer.Option("--output", help="Where results and reports go.")
    ] = None,
    ledger: Annotated[str | None, typer.Option(help=LEDGER_HELP)] = None,
    strategy: Annotated[list[str] | None, typer.Option(help=STRATEGY_HELP)] = None,
    majority: Annotated[
        str | None, typer.Option(help="Shortcut: majority vote sample counts, e.g. 1,2,4,8.")
    ] = None,
    budgets: Annotated[
        str | None, typer.Option(help="Shortcut: budget forcing thinking caps, e.g. 64,128,256.")
    ] = None,
    engine: Annotated[
        str | None, typer.Option(help="vllm (in-process) or openai (a served endpoint).")
    ] = None,
    model: Annotated[
        str | None,
        typer.Option(
            help="Model: a local HF folder, a Hugging Face id (org/name) or the embedded one."
        ),
    ] = None,
    revision: Annotated[
        str | None, typer.Option(help="Hugging Face revision (branch, tag or commit) of --model.")
    ] = None,
    base_url: Annotated[
        str | None, typer.Option(help="--engine openai: the server's /v1 URL.")
    ] = None,
    engine_arg: Annotated[
        list[str] | None,
        typer.Option(
            help="key=value passed to the engine (repeatable), e.g. dtype=bfloat16, "
            "tensor_parallel_size=2, gpu_memory_utilization=0.85, max_model_len=8192."
        ),
    ] = None,
    seed: Annotated[int | None, typer.Option(help="Run seed.")] = None,
    shard_size: Annotated[int | None, typer.Option(help="Items per shard.")] = None,
    limit: Annotated[
        int | None, typer.Option("--limit", "--max-items", help="Use only the first N questions.")
    ] = None,
    run_id: Annotated[
        str | None, typer.Option(help="Run id (default: derived from the request).")
    ] = None,
    price_in: PriceIn = None,
    price_out: PriceOut = None,
    gpu_hour: GpuHour = None,
    tau: Tau = None,
    lambda_: Lambda = None,
    min_items: MinItems = None,
) -> None:
    """Run a batch now, in this process, and print its results table and where its outputs are.

    Examples:

      ttscale run --input ttscale/data/demo.jsonl --majority 1,4 --budgets 64,128

      ttscale run --input q.jsonl --strategy adaptive_consistency:n_max=16,threshold=0.95 --limit 20

      ttscale run --config batch.yaml --model Qwen/Qwen2.5-Math-7B-Instruct --engine-arg dtype=bfloat16

      ttscale run --input q.jsonl --engine openai --base-url http://vllm:8000/v1 --model served-name

      ttscale run --input q.jsonl --majority 1,4 --price-in 0.2 --price-out 0.6 --tau 0.5
    """
    overrides: dict[str, Any] = {
        "input_uri": input_uri, "output_uri": output_uri, "ledger_path": ledger, "seed": seed,
        "shard_size": shard_size, "max_items": limit, "run_id": run_id,
    }  # fmt: skip
    engine_settings = _engine_settings(engine, model, revision, base_url, engine_arg or [])
    pricing = report_options(price_in, price_out, gpu_hour, tau, lambda_, min_items)
    request = build_request(
        config, overrides, int_list(majority), int_list(budgets), strategy, engine_settings, pricing
    )
    result = execute(request)
    print_results(result)
    if "log" in result:
        settings.out_console().print(f"log: {result['log']}", highlight=False, soft_wrap=True)


def _engine_settings(
    kind: str | None,
    model: str | None,
    revision: str | None,
    base_url: str | None,
    engine_args: list[str],
) -> dict[str, Any]:
    if kind not in (None, "vllm", "openai"):
        raise fail(f"--engine must be vllm or openai, not {kind!r}", 2)
    settings_: dict[str, Any] = {"kind": kind} if kind else {}
    if model:
        settings_["model"] = model
    if revision:
        settings_["revision"] = revision
    if base_url:
        settings_["base_url"] = base_url
    if engine_args:
        from ttscale.engines.config import VLLMEngineConfig

        if kind == "openai":
            raise fail("--engine-arg applies to --engine vllm only", 2)
        own = set(VLLMEngineConfig.model_fields)
        for key, value in parse_key_values(engine_args, "--engine-arg").items():
            # ttscale's own settings are set as such; anything else goes to vLLM as it is.
            if key in own:
                settings_[key] = value
            else:
                settings_.setdefault("engine_args", {})[key] = value
    return settings_
