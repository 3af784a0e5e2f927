"""One self-contained HTML file: the page, its style and script, the overview and the rows, all inline.

The page loads nothing (a Content-Security-Policy forbids it), so it works from file:// and by mail.
The data is two JSON documents in ``<script type="application/json">`` elements: the index the list
filters and sorts on, before the script, and the rows, after it. Every ``<`` in them is written as
``\\u003c``, so no text in a row can end its script element.
"""

from __future__ import annotations

from collections.abc import Iterator
from html import escape
from importlib import resources
from pathlib import Path
from typing import IO

import orjson

from .. import __version__
from .catalog import Catalog, script_safe
from .overview import render_overview

_ASSETS = resources.files(__package__) / "assets"
_ROWS_PER_WRITE = 1000


def _asset(name: str) -> str:
    return (_ASSETS / name).read_text(encoding="utf-8")


def _index(catalog: Catalog) -> bytes:
    """What the list needs: the columns, their string table, the ledger's rejections, facts about the file."""
    meta = {
        "source": "stdin" if catalog.source == "-" else Path(catalog.source).name,
        "rows": catalog.read,
        "shown": catalog.shown,
        "sampled": catalog.sampled,
        "max_rows": catalog.max_rows,
        "skipped": catalog.skipped,
        "ledger": catalog.ledger,
        "version": __version__,
    }
    return orjson.dumps(
        {"meta": meta, "strings": catalog.strings.strings, "cols": catalog.columns, "rejected": catalog.rejected}
    )


def _rows(catalog: Catalog) -> Iterator[bytes]:
    """The rows (already script-safe) as one JSON array, in pieces of 1,000 rows (joined at once, the page's
    largest part would be in memory twice)."""
    yield b"["
    rows = catalog.rows
    for start in range(0, len(rows), _ROWS_PER_WRITE):
        yield (b"," if start else b"") + b",".join(rows[start : start + _ROWS_PER_WRITE])
    yield b"]"


def write_page(catalog: Catalog, out: IO[bytes]) -> int:
    """Write the page to a binary stream; returns the bytes written.

    The index and the script come before the rows, so the browser runs the script (and shows the list)
    while it still reads the rows."""
    title = escape("stdin" if catalog.source == "-" else Path(catalog.source).name)
    overview = render_overview(catalog.profile.summary(), shown=catalog.shown, rejected=catalog.rejected)
    template = _asset("viewer.html").replace("__TITLE__", title).replace("__CSS__", _asset("viewer.css"))
    # Split at the markers before inserting anything, so no text of a row or of the script is taken for one.
    head, rest = template.split("__OVERVIEW__")
    before_index, rest = rest.split("__INDEX__")
    before_js, rest = rest.split("__JS__")
    before_rows, tail = rest.split("__ROWS__")
    pieces: list[str | Iterator[bytes]] = [head, overview, before_index, iter([script_safe(_index(catalog))])]
    pieces += [before_js, _asset("viewer.js"), before_rows, _rows(catalog), tail]
    written = 0
    for piece in pieces:
        if isinstance(piece, str):
            written += out.write(piece.encode())
        else:
            for chunk in piece:
                written += out.write(chunk)
    return written


def default_output(source: str) -> str:
    """INPUT's name with .html beside it (`out/run.jsonl` → `out/run.html`); stdout for stdin."""
    if source == "-":
        return "-"
    path = Path(source)
    return str(path.with_name(path.stem + ".html"))
