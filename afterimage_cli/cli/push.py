"""`afterimage push DIR --repo ORG/NAME`: publish an `export --format hf` folder on the Hugging Face Hub."""

from __future__ import annotations

from pathlib import Path

import typer

from . import app
from .common import run_command, stderr


@app.command()
def push(
    directory: Path = typer.Argument(..., metavar="DIR", help="A folder written by export --format hf."),
    repo: str = typer.Option(..., "--repo", metavar="ORG/NAME", help="The dataset repo on the Hub."),
    private: bool = typer.Option(False, "--private", help="Create the repo private (an existing one keeps its own)."),
    debug: bool = typer.Option(False, "--debug", help="Show tracebacks."),
) -> None:
    """Upload a dataset folder to the Hugging Face Hub in one commit (token from HF_TOKEN)."""

    def body() -> None:
        from ..hub import push_folder

        result = push_folder(directory, repo, private=private)
        stderr.print(
            f"pushed {result.files} files from {directory} to {result.url} ({result.commit_url})", markup=False
        )

    run_command(body, debug=debug)
