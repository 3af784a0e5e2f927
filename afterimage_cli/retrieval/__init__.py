"""Retrieval: the retriever protocol, embedders (sparse BM25 default, litellm, sentence-transformers), Qdrant."""

from __future__ import annotations

from .base import BaseRetriever, Retriever, aretrieve
from .sparse import SparseBM25Embedder

__all__ = ["BaseRetriever", "Retriever", "SparseBM25Embedder", "aretrieve"]
