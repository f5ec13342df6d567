"""``ttscale pool import``: a sample pool made by another tool, as a run in the ledger."""

from __future__ import annotations

from typing import Annotated

import typer

from ttscale.cli.app import DEFAULT_LEDGER, LEDGER_HELP, fail, guarded, pool_app, settings


@pool_app.command("import")
@guarded
def pool_import(
    source: Annotated[
        str, typer.Argument(help="The pool's JSONL (or .jsonl.gz): a path, file:// or s3:// URI.")
    ],
    fmt: Annotated[
        str, typer.Option("--format", help="generic, qwen-math, search-and-learn or lm-eval.")
    ],
    ledger: Annotated[str, typer.Option(help=LEDGER_HELP)] = DEFAULT_LEDGER,
    run_id: Annotated[
        str | None,
        typer.Option(help="The run's id (default: pool- and a hash of the pool and settings)."),
    ] = None,
    dataset: Annotated[
        str | None,
        typer.Option(help="Grading rules for lines that name no dataset (gsm8k, math, ...)."),
    ] = None,
    tokenizer: Annotated[
        str | None,
        typer.Option(
            help="Counts the tokens the pool does not store: a model folder or HF id "
            "(default: the embedded model's tokenizer)."
        ),
    ] = None,
) -> None:
    """Import a sample pool as a run: its items, and per item one majority@N unit whose calls
    are the pool's samples. Then `ttscale replay RUN --strategy ...` replays any replayable
    strategy on it. Importing the same pool again adds nothing.

    Bad lines are reported (object, line, field, reason) and stored as the run's input errors;
    the rest is imported (exit 0, as `ttscale run` does with bad rows; exit 3 if no line is valid).

    Examples:

      ttscale pool import --format qwen-math math/test_qwen25-math-cot_-1_seed0_t0.7_s0_e-1.jsonl

      ttscale pool import --format generic s3://bucket/pools/gsm8k.jsonl --dataset gsm8k

      ttscale replay pool-0123456789ab --strategy majority:n=1,2,4,8
    """
    from ttscale.pools import FORMATS
    from ttscale.pools.writer import PoolImport, import_pool

    if fmt not in FORMATS:
        raise fail(f"--format must be one of {', '.join(FORMATS)}, not {fmt!r}", 2)
    summary = import_pool(PoolImport(source, fmt, ledger, run_id, dataset, tokenizer))
    out, err = settings.out_console(), settings.err_console()
    for bad in summary.bad_rows:
        where = f"{bad.object} line {bad.line}" + (f" field {bad.field}" if bad.field else "")
        err.print(f"bad line: {where}: {bad.reason}", highlight=False, markup=False, soft_wrap=True)
    pool = summary.pool
    tokens = pool["token_counts"]
    lines = [
        f"run {summary.run_id}: {summary.items} items, {summary.samples} samples, "
        f"{len(summary.bad_rows)} bad lines",
        f"ledger: {ledger} (+{summary.units_added} units, +{summary.calls_added} calls)"
        + ("" if summary.units_added else "; this pool was already imported"),
        f"tokens: {tokens['from_pool']} samples counted by the pool, {tokens['counted']} by "
        f"tokenizer {tokens['tokenizer'] or '-'}",
        f"answers: {'the pool' + chr(39) + 's own' if pool['answers'] == 'pool' else 'extracted by ttscale'}",
    ]
    if pool["graded_samples"]:
        lines.append(
            f"grading: the pool's verdict and ttscale's disagree on {pool['verdict_disagreements']}"
            f" of {pool['graded_samples']} samples (ttscale's grading decides accuracy)"
        )
    if pool["merged_answer_items"]:
        lines.append(
            f"{pool['merged_answer_items']} items have answers that differ as text but vote "
            "together under ttscale's rules (a tool voting on exact text counts them apart)"
        )
    if pool.get("pool_majority_at_k"):
        figures = ", ".join(f"maj@{k} {v:.4f}" for k, v in pool["pool_majority_at_k"].items())
        lines.append(f"the pool's own (its rule): {figures}")
    if pool["other_variant_lines"]:
        lines.append(f"{pool['other_variant_lines']} lines of other filters skipped")
    for line in lines:
        out.print(line, highlight=False, markup=False, soft_wrap=True)
