"""Corpus: the documents of a config and their chunks, loaded once."""

from __future__ import annotations

from dataclasses import dataclass

from ..config import DocumentsConfig
from ..errors import ConfigError
from .chunking import chunk_text
from .models import Chunk, Document, chunk_id_for, content_hash
from .sources import read_source


@dataclass(frozen=True)
class Corpus:
    """Documents and their chunks, in a stable order."""

    documents: list[Document]
    chunks: list[Chunk]

    @property
    def fingerprint(self) -> str:
        """A hash of every chunk id: it changes exactly when some chunk's content or place changes."""
        return content_hash(*(c.id for c in self.chunks))

    def chunk(self, chunk_id: str) -> Chunk:
        """The chunk with this id."""
        for chunk in self.chunks:
            if chunk.id == chunk_id:
                return chunk
        raise KeyError(chunk_id)


def chunk_documents(documents: list[Document], size: int, overlap: int) -> list[Chunk]:
    """Every document's chunks, numbered within their document."""
    chunks = []
    for doc in documents:
        for index, text in enumerate(chunk_text(doc.text, size, overlap)):
            chunks.append(
                Chunk(
                    id=chunk_id_for(doc.id, index, text),
                    document_id=doc.id,
                    index=index,
                    text=text,
                    source=doc.source,
                    title=doc.title,
                )
            )
    return chunks


def load_corpus(cfg: DocumentsConfig) -> Corpus:
    """Read every source, drop repeated documents (same id), chunk; ConfigError if nothing is left."""
    documents: dict[str, Document] = {}
    for number, source in enumerate(cfg.sources):
        for doc in read_source(source, f"documents.sources[{number}]"):
            if doc.text:
                documents.setdefault(doc.id, doc)
    if not documents:
        paths = ", ".join(s.path for s in cfg.sources)
        raise ConfigError(f"documents.sources: no text found in {paths}")
    docs = list(documents.values())
    return Corpus(documents=docs, chunks=chunk_documents(docs, cfg.chunk_size, cfg.chunk_overlap))
