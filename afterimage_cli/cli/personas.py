"""`afterimage personas`: generate personas from the documents as a tree and save them for `generate`."""

from __future__ import annotations

from pathlib import Path

import orjson
import typer

from . import app
from .common import run_command, stderr


@app.command()
def personas(
    config: Path = typer.Argument(..., help="The YAML config (its persona_generation and documents sections)."),
    output: str | None = typer.Option(None, "-o", "--output", help="Where to save them (default: personas_file)."),
    json_summary: bool = typer.Option(False, "--json", help="Print the summary as one JSON object on stdout."),
    debug: bool = typer.Option(False, "--debug", help="Show tracebacks."),
) -> None:
    """Generate personas (a tree from the documents) and save them (.jsonl, .json, .txt); `generate` reuses them."""

    def body() -> None:
        from ..config_loader import load_config
        from ..personas.command import write_personas

        summary = write_personas(load_config(config), output, stderr)
        if json_summary:
            typer.echo(orjson.dumps(summary).decode())
            return
        depths = ", ".join(f"depth {d}: {n}" for d, n in summary["by_depth"].items())
        stderr.print(f"wrote {summary['personas']} personas ({depths}) to {summary['output']}", markup=False)

    run_command(body, debug=debug)
