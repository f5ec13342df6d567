"""The Typer application, its sub-commands' groups, and the helpers every command shares."""

from __future__ import annotations

import csv
import functools
import io
import json
import sys
import traceback
from dataclasses import dataclass
from typing import Annotated, Any, TextIO

import click
import typer
from pydantic import ValidationError
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from ttscale.errors import TTScaleError
from ttscale.schemas import default_ledger

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
runs_app = typer.Typer(help="Runs in the ledger.")
pool_app = typer.Typer(
    help="Sample pools made by other tools, as runs `ttscale replay` serves.",
    no_args_is_help=True,
)
app.add_typer(runs_app, name="runs")
app.add_typer(models_app, name="models")
app.add_typer(data_app, name="data")
app.add_typer(pool_app, name="pool")
console = Console(stderr=True)
# A DuckLake: SQLite catalog here, its Parquet files in ttscale-out/ledger.sqlite.files/
# (or the service's shared lake, named by $TTSCALE_LEDGER).
DEFAULT_LEDGER = default_ledger()  # $TTSCALE_LEDGER in the service
LEDGER_HELP = "Ledger: a path (SQLite-catalog lake) or a ducklake:sqlite:/ducklake:postgres: URI."


@dataclass
class Settings:
    """Process-wide CLI state: ``--verbose``, and the real terminal while output is redirected."""

    verbose: bool = False
    terminal: tuple[TextIO, TextIO] | None = None
    """(stdout, stderr) of the terminal while fds 1 and 2 go to a run's log file."""

    def out_console(self) -> Console:
        stream = self.terminal[0] if self.terminal else None
        # Piped output (make demo | tee) gets a width that fits the results table on one line.
        width = None if (stream or sys.stdout).isatty() else 120
        return Console(file=stream, width=width)

    def err_console(self) -> Console:
        return Console(file=self.terminal[1]) if self.terminal else console


settings = Settings()


def _version(value: bool) -> None:
    if value:
        from importlib.metadata import version

        typer.echo(f"ttscale {version('ttscale')}")
        raise typer.Exit()


@app.callback()
def main_options(
    verbose: Annotated[
        bool,
        typer.Option("--verbose", "-v", help="Show library logs and tracebacks on the terminal."),
    ] = False,
    version: Annotated[
        bool,
        typer.Option("--version", callback=_version, is_eager=True, help="Print the version."),
    ] = False,
) -> None:
    settings.verbose = verbose


def fail(message: str, code: int) -> typer.Exit:
    # The message may quote user input (a run id, a path): never read it as markup.
    settings.err_console().print(
        f"[red]error:[/red] {escape(message)}", highlight=False, soft_wrap=True
    )
    return typer.Exit(code)


def guarded(fn: Any) -> Any:
    """Turn errors into a one-line message and an exit code; a traceback only with --verbose."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except (typer.Exit, click.exceptions.Exit, click.exceptions.Abort, click.ClickException):
            raise
        except TTScaleError as exc:
            _traceback_if_verbose()
            raise fail(str(exc), exc.exit_code) from None
        except ValidationError as exc:
            raise fail(f"invalid request: {validation_message(exc)}", 2) from None
        except Exception as exc:
            _traceback_if_verbose()
            hint = "" if settings.verbose else " (run with --verbose for the traceback)"
            raise fail(f"unexpected {type(exc).__name__}: {exc}{hint}", 1) from None

    return wrapper


def validation_message(exc: ValidationError) -> str:
    """Each error as ``field.path: message``, on one line."""
    return "; ".join(
        f"{'.'.join(str(p) for p in e['loc']) or 'request'}: {e['msg']}" for e in exc.errors()
    )


def _traceback_if_verbose() -> None:
    if settings.verbose:
        settings.err_console().print(traceback.format_exc(), highlight=False, markup=False)


def int_list(text: str | None) -> list[int] | None:
    if text is None:
        return None
    try:
        return [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise fail(f"expected comma-separated integers, got {text!r}", 2) from None


def check_format(fmt: str) -> None:
    if fmt not in ("table", "csv", "json"):
        raise fail(f"--format must be table, csv or json, not {fmt!r}", 2)


def print_rows(names: list[str], rows: list[tuple[Any, ...]], fmt: str) -> None:
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
        settings.out_console().print(table)
