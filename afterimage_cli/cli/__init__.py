"""The `afterimage` command. Command modules are thin and import heavy libraries only when they run."""

from __future__ import annotations

import typer

from .. import __version__

app = typer.Typer(
    name="afterimage",
    help="Generate, judge and export synthetic conversation datasets for fine-tuning LLMs.",
    no_args_is_help=True,
    add_completion=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"afterimage {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    """Generate, judge and export synthetic conversation datasets for fine-tuning LLMs."""


from . import config_commands, evaluate, export, generate, personas, push, status, view  # noqa: E402,F401  (registers commands on `app`)


def main() -> None:
    """Console-script entry point."""
    app()
