"""One self-contained HTML file: the page, its style and script, the overview and the rows, all inline.

The page loads nothing (a Content-Security-Policy forbids it), so it works from file:// and by mail.
The rows are one JSON document in a ``<script type="application/json">``; every ``<`` in it is written
as ``\\u003c`` so no text in a row can end the script element.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable
from html import escape
from importlib import resources
from pathlib import Path
from typing import IO

import orjson

from .. import __version__
from .catalog import Catalog
from .overview import render_overview

_ASSETS = resources.files(__package__) / "assets"


def _asset(name: str) -> str:
    return (_ASSETS / name).read_text(encoding="utf-8")


def _data_parts(catalog: Catalog) -> Iterable[bytes]:
    """The embedded JSON document, in pieces (the rows are already-encoded bytes)."""
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
    head = {"meta": meta, "strings": catalog.strings.strings, "cols": catalog.columns, "rejected": catalog.rejected}
    opening = orjson.dumps(head)[:-1]  # the object stays open for "rows"
    rows = iter(catalog.rows)
    first = next(rows, b"")
    # One piece per row: joining 100k rows first would hold the page's largest part in memory twice.
    return itertools.chain((opening, b',"rows":[', first), (b"," + row for row in rows), (b"]}",))


def write_page(catalog: Catalog, out: IO[bytes]) -> int:
    """Write the page to a binary stream; returns the bytes written."""
    title = escape("stdin" if catalog.source == "-" else Path(catalog.source).name)
    overview = render_overview(catalog.profile.summary(), shown=catalog.shown, rejected=catalog.rejected)
    template = _asset("viewer.html").replace("__TITLE__", title).replace("__CSS__", _asset("viewer.css"))
    before_overview, after_overview = template.split("__OVERVIEW__")
    before_data, after_data = after_overview.split("__DATA__")
    # The script is inserted last and by position, so nothing in it (or in the rows) is taken for a marker.
    before_js, after_js = after_data.split("__JS__")
    written = 0
    for part in (before_overview, overview, before_data):
        written += out.write(part.encode())
    for chunk in _data_parts(catalog):
        written += out.write(chunk.replace(b"<", b"\\u003c"))
    for part in (before_js, _asset("viewer.js"), after_js):
        written += out.write(part.encode())
    return written


def default_output(source: str) -> str:
    """INPUT's name with .html beside it (`out/run.jsonl` → `out/run.html`); stdout for stdin."""
    if source == "-":
        return "-"
    path = Path(source)
    return str(path.with_name(path.stem + ".html"))
