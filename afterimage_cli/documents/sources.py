"""Document sources: a directory (with a glob pattern), a glob, a single file, or a JSONL file."""

from __future__ import annotations

import glob
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson

from ..config import DocumentSourceConfig
from ..errors import ConfigError
from .models import Document, document_id_for
from .readers import FORMATS_BY_SUFFIX, format_of, read_document

_GLOB_CHARS = frozenset("*?[")


def _files(source: DocumentSourceConfig, where: str) -> list[tuple[Path, bool]]:
    """(file, named explicitly) for a source; files found by a scan may be skipped if their format is unknown."""
    if _GLOB_CHARS & set(source.path):
        found = sorted(Path(p) for p in glob.glob(source.path, recursive=True))
        files = [(p, False) for p in found if p.is_file()]
        if not files:
            raise ConfigError(f"{where}.path: no files match {source.path!r}")
        return files
    path = Path(source.path)
    if path.is_file():
        return [(path, True)]
    if path.is_dir():
        found = sorted(p for p in path.glob(source.pattern) if p.is_file())
        files = [(p, False) for p in found if not any(part.startswith(".") for part in p.relative_to(path).parts)]
        if not files:
            raise ConfigError(f"{where}: no files match {source.pattern!r} under {source.path}")
        return files
    hint = "" if path.is_absolute() else f" (relative paths start from the current directory, {Path.cwd()})"
    raise ConfigError(f"{where}.path: {source.path} does not exist{hint}")


def _format(path: Path, source: DocumentSourceConfig, explicit: bool, where: str) -> str | None:
    """The format to read `path` with; None skips a scanned file of an unknown kind."""
    if source.format != "auto":
        return source.format
    fmt = format_of(path)
    if fmt is None and explicit:
        known = ", ".join(sorted(FORMATS_BY_SUFFIX))
        raise ConfigError(
            f"{where}: cannot tell the format of {path} from its suffix (known: {known}); "
            "set format: txt, md, html, pdf or jsonl"
        )
    return fmt


def _jsonl_documents(path: Path, source: DocumentSourceConfig, where: str) -> Iterator[Document]:
    """One document per line; `text_key` is required on every line, `id_key` and `title_key` when set."""
    with path.open("rb") as fh:
        for number, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                record: Any = orjson.loads(line)
            except orjson.JSONDecodeError as exc:
                raise ConfigError(f"{where}: {path}:{number}: not JSON: {exc}") from None
            if not isinstance(record, dict):
                raise ConfigError(f"{where}: {path}:{number}: expected a JSON object")
            text = record.get(source.text_key)
            if not isinstance(text, str):
                keys = ", ".join(sorted(record)) or "none"
                raise ConfigError(
                    f"{where}.text_key: {path}:{number} has no string field {source.text_key!r} (its keys: {keys})"
                )
            doc_id: str | None = None
            if source.id_key is not None:
                if record.get(source.id_key) is None:
                    raise ConfigError(f"{where}.id_key: {path}:{number} has no field {source.id_key!r}")
                doc_id = str(record[source.id_key])
            title = record.get(source.title_key) if source.title_key else None
            metadata = {k: v for k, v in record.items() if k not in (source.text_key, source.id_key, source.title_key)}
            yield Document(
                id=doc_id or document_id_for(text),
                text=text.strip(),
                source=f"{path}:{number}",
                title=str(title) if title else None,
                metadata=metadata,
            )


def read_source(source: DocumentSourceConfig, where: str) -> Iterator[Document]:
    """Every document a source names, in a stable (sorted) order."""
    for path, explicit in _files(source, where):
        fmt = _format(path, source, explicit, where)
        if fmt is None:
            continue
        if fmt == "jsonl":
            yield from _jsonl_documents(path, source, where)
            continue
        title, text = read_document(path, fmt)
        yield Document(id=document_id_for(text), text=text, source=str(path), title=title or path.stem)
