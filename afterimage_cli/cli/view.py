"""`afterimage view`: JSONL rows → one self-contained HTML page to browse them offline."""

from __future__ import annotations

import typer

from . import app
from .common import run_command, stderr


@app.command()
def view(
    source: str = typer.Argument(..., metavar="INPUT", help="A JSONL file of rows, or - for stdin."),
    output: str | None = typer.Option(
        None,
        "-o",
        "--output",
        metavar="FILE.html",
        help="Where to write the page (default: INPUT's <stem>.html beside it; stdout for stdin).",
    ),
    open_page: bool = typer.Option(False, "--open", help="Open the page in the default browser when written."),
    max_rows: int = typer.Option(
        100_000, "--max-rows", min=1, metavar="N", help="Embed at most N rows: a uniform sample beyond it."
    ),
    skip_invalid: bool = typer.Option(False, "--skip-invalid", help="Skip and count bad rows instead of stopping."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No summary line on stderr."),
    debug: bool = typer.Option(False, "--debug", help="Show tracebacks."),
) -> None:
    """Write one offline HTML page to browse, filter and search conversations, with an overview."""

    def body() -> None:
        from ..errors import UsageError
        from ..view import build_view

        if open_page and (output == "-" or (output is None and source == "-")):
            raise UsageError("--open needs a file: give -o FILE.html")
        result = build_view(source, output, max_rows=max_rows, skip_invalid=skip_invalid)
        catalog = result.catalog
        if not quiet:
            sample = f" (a uniform sample of {catalog.shown:,})" if catalog.sampled else ""
            where = "stdout" if result.output == "-" else result.output
            stderr.print(
                f"view: {catalog.read:,} rows{sample}, {catalog.skipped:,} skipped (invalid), "
                f"{len(catalog.rejected):,} rejected items from the ledger; wrote {where} "
                f"({result.bytes / 1e6:,.1f} MB)",
                markup=False,
            )
        if open_page:
            import webbrowser
            from pathlib import Path

            webbrowser.open(Path(result.output).resolve().as_uri())

    run_command(body, debug=debug)
