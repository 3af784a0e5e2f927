"""`afterimage view`: one offline HTML page to browse a file of rows, with an overview of the whole set."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..errors import UsageError
from ..export.reader import open_rows
from ..export.writer import Destination
from ..rowshape import view_row_problem
from .catalog import Catalog, build_catalog
from .page import default_output, write_page

DEFAULT_MAX_ROWS = 100_000

__all__ = ["DEFAULT_MAX_ROWS", "ViewResult", "build_view"]


@dataclass(frozen=True)
class ViewResult:
    """What `build_view` wrote."""

    output: str
    bytes: int
    catalog: Catalog


def build_view(
    source: str, output: str | None = None, *, max_rows: int = DEFAULT_MAX_ROWS, skip_invalid: bool = False
) -> ViewResult:
    """Read INPUT (a JSONL path or '-') and write its page to `output` (default: beside INPUT, or stdout)."""
    if max_rows < 1:
        raise UsageError(f"--max-rows {max_rows}: give at least 1")
    target = default_output(source) if output is None else output
    if target != "-" and source != "-" and _same_file(source, target):
        raise UsageError(f"-o {target} is the input file; choose another output")
    with open_rows(source, skip_invalid=skip_invalid, check=view_row_problem) as reader:
        catalog = build_catalog(reader, source, max_rows)
    destination = Destination(target)
    success = False
    try:
        written = write_page(catalog, destination.stream)
        success = True
    finally:
        destination.close(success=success)
    return ViewResult(target, written, catalog)


def _same_file(a: str, b: str) -> bool:
    return Path(a).resolve() == Path(b).resolve()
