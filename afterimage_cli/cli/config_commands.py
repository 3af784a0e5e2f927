"""`afterimage validate` and `afterimage schema`: config (and row) checks that call nothing."""

from __future__ import annotations

from pathlib import Path

import orjson
import typer
from rich.markup import escape

from . import app
from .common import run_command, stderr


@app.command()
def validate(
    config: Path = typer.Argument(..., help="The YAML config to check."),
    debug: bool = typer.Option(False, "--debug", help="Show tracebacks."),
) -> None:
    """Check a config (keys, types, component names, key variables) without calling any model."""

    def body() -> None:
        from ..components import model_routes
        from ..config_loader import load_config
        from ..pipeline import check_components

        cfg = load_config(config)
        warnings = check_components(cfg)
        for where, route in model_routes(cfg).items():
            stderr.print(f"{where}: {route.describe()}", markup=False)
        for warning in warnings:
            stderr.print(f"[yellow]warning:[/] {escape(warning)}")
        stderr.print(f"{config}: ok", markup=False)

    run_command(body, debug=debug)


@app.command()
def schema(
    rows: bool = typer.Option(False, "--rows", help="Print the JSON Schema of a JSONL row instead of the config's."),
) -> None:
    """Print the config's JSON Schema on stdout (point your editor's YAML support at it), or with --rows a row's."""
    if rows:
        from ..types import ConversationRow

        typer.echo(orjson.dumps(ConversationRow.model_json_schema(), option=orjson.OPT_INDENT_2).decode())
        return
    from ..config import Config

    typer.echo(orjson.dumps(Config.model_json_schema(), option=orjson.OPT_INDENT_2).decode())
