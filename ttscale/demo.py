"""``python -m ttscale.demo`` (``make demo``): the main job on embedded defaults.

The demo lives in ``ttscale.cli.demo``; this module is its entry point.
"""

from __future__ import annotations

from ttscale.cli.demo import DEMO_OUTPUT, demo_request, main

__all__ = ["DEMO_OUTPUT", "demo_request", "main"]

if __name__ == "__main__":
    import typer

    try:
        main()
    except typer.Exit as exc:
        raise SystemExit(exc.exit_code) from None
