"""Document and Chunk, and the content hashes their ids come from."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any


def content_hash(*parts: str) -> str:
    """A hex sha256 of the parts, separated so ('ab', 'c') and ('a', 'bc') differ."""
    digest = hashlib.sha256()
    for part in parts:
        digest.update(part.encode("utf-8"))
        digest.update(b"\x00")
    return digest.hexdigest()


def document_id_for(text: str) -> str:
    """The id of a document without a given id: the same text always gets the same id."""
    return f"doc-{content_hash(text)[:12]}"


def chunk_id_for(document_id: str, index: int, text: str) -> str:
    """A chunk's id changes when its text or place changes, so an index keyed by chunk ids never goes stale."""
    return f"{document_id}-{content_hash(document_id, str(index), text)[:8]}"


@dataclass(frozen=True)
class Document:
    """One source document as plain text."""

    id: str
    text: str
    source: str
    title: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict, compare=False)


@dataclass(frozen=True)
class Chunk:
    """A piece of a document, the unit of context and retrieval."""

    id: str
    document_id: str
    index: int
    text: str
    source: str
    title: str | None = None
