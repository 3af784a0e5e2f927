"""Documents: sources (directory, glob, file, JSONL), format readers, chunking with overlap, stable ids."""

from __future__ import annotations

from .corpus import Corpus, load_corpus
from .models import Chunk, Document

__all__ = ["Chunk", "Corpus", "Document", "load_corpus"]
