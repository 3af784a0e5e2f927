"""Format readers: a file's bytes → (title, plain text). txt, md, html (stdlib parser) and pdf (pypdf)."""

from __future__ import annotations

import re
from html.parser import HTMLParser
from pathlib import Path

from ..errors import ConfigError

FORMATS_BY_SUFFIX = {
    ".txt": "txt",
    ".text": "txt",
    ".md": "md",
    ".markdown": "md",
    ".html": "html",
    ".htm": "html",
    ".pdf": "pdf",
    ".jsonl": "jsonl",
}

_MD_HEADING = re.compile(r"^\s{0,3}#{1,6}\s+(.*?)\s*#*\s*$")
_MD_LINK = re.compile(r"!?\[([^\]]*)\]\([^)]*\)")
_MD_EMPHASIS = re.compile(r"(\*\*|__|\*|_|`)(?=\S)(.+?)(?<=\S)\1")
_MD_LIST = re.compile(r"^\s*(?:[-*+]|\d+[.)])\s+")
_BLANKS = re.compile(r"\n{3,}")


def format_of(path: Path) -> str | None:
    """The format a file's suffix names, or None."""
    return FORMATS_BY_SUFFIX.get(path.suffix.lower())


def read_text(path: Path) -> str:
    """A text file as str; bad bytes are replaced rather than failing a whole corpus."""
    return path.read_text(encoding="utf-8", errors="replace")


def markdown_to_text(source: str) -> tuple[str | None, str]:
    """Strip markdown markup (headings, emphasis, links, list bullets, fences); the first heading is the title."""
    title = None
    lines = []
    for line in source.splitlines():
        if line.strip().startswith(("```", "~~~")):
            continue
        heading = _MD_HEADING.match(line)
        if heading:
            title = title or heading.group(1)
            # A heading is its own paragraph, so chunks keep section boundaries.
            lines.extend(["", heading.group(1), ""])
            continue
        line = _MD_LIST.sub("", line)
        line = _MD_LINK.sub(r"\1", line)
        lines.append(_MD_EMPHASIS.sub(r"\2", line))
    return title, _BLANKS.sub("\n\n", "\n".join(lines)).strip()


class _HTMLText(HTMLParser):
    """Collects visible text; block elements end paragraphs, script and style are skipped."""

    BLOCKS = frozenset("p div section article header footer li ul ol h1 h2 h3 h4 h5 h6 pre table tr br hr".split())
    SKIP = frozenset(("script", "style", "noscript", "template"))

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.title: str | None = None
        self.first_heading: str | None = None
        self._skipping = 0
        self._in: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in self.SKIP:
            self._skipping += 1
        if tag in self.BLOCKS:
            self.parts.append("\n\n")
        self._in.append(tag)

    def handle_endtag(self, tag: str) -> None:
        if tag in self.SKIP and self._skipping:
            self._skipping -= 1
        if tag in self.BLOCKS:
            self.parts.append("\n\n")
        if tag in self._in:
            del self._in[len(self._in) - 1 - self._in[::-1].index(tag) :]

    def handle_data(self, data: str) -> None:
        if self._skipping:
            return
        current = self._in[-1] if self._in else ""
        text = " ".join(data.split())
        if current == "title":
            self.title = (self.title or "") + text
            return
        if current in ("h1", "h2") and self.first_heading is None and text:
            self.first_heading = text
        if text:
            self.parts.append(text + " ")


def html_to_text(source: str) -> tuple[str | None, str]:
    """Visible text of an HTML page; the <title> (or first heading) is the title."""
    parser = _HTMLText()
    parser.feed(source)
    parser.close()
    paragraphs = [" ".join(p.split()) for p in "".join(parser.parts).split("\n\n")]
    return parser.title or parser.first_heading, "\n\n".join(p for p in paragraphs if p)


def pdf_to_text(path: Path) -> tuple[str | None, str]:
    """The text layer of every page (no OCR); the PDF's metadata title if it has one."""
    from pypdf import PdfReader
    from pypdf.errors import PdfReadError

    try:
        reader = PdfReader(str(path))
        pages = [page.extract_text() or "" for page in reader.pages]
        title = reader.metadata.title if reader.metadata else None
    except (PdfReadError, OSError, ValueError) as exc:
        raise ConfigError(f"{path}: cannot read PDF: {exc}") from None
    return (str(title) if title else None), "\n\n".join(p.strip() for p in pages if p.strip())


def read_document(path: Path, fmt: str) -> tuple[str | None, str]:
    """(title, text) of one file in a known format other than jsonl."""
    if fmt == "pdf":
        return pdf_to_text(path)
    raw = read_text(path)
    if fmt == "md":
        return markdown_to_text(raw)
    if fmt == "html":
        return html_to_text(raw)
    if fmt == "txt":
        return None, raw.strip()
    raise ConfigError(f"{path}: unknown document format {fmt!r} (known: txt, md, html, pdf, jsonl)")
