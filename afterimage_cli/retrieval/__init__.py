"""Retrieval: the retriever protocol, embedders (sparse BM25 default, litellm, sentence-transformers), Qdrant.

Nothing here imports qdrant_client or litellm at module level; they load when an index is built or queried.
"""

from __future__ import annotations

from ..types import NO_RETRIEVAL_CONTEXT, RetrievalHit, RetrievalResult
from .base import BaseRetriever, Retriever, aretrieve, result_from_hits
from .embeddings import Embedder, LiteLLMEmbedder, SentenceTransformerEmbedder, build_embedder
from .qdrant import QdrantRetriever
from .sparse import SparseBM25Embedder

__all__ = [
    "NO_RETRIEVAL_CONTEXT",
    "BaseRetriever",
    "Embedder",
    "LiteLLMEmbedder",
    "QdrantRetriever",
    "RetrievalHit",
    "RetrievalResult",
    "Retriever",
    "SentenceTransformerEmbedder",
    "SparseBM25Embedder",
    "aretrieve",
    "build_embedder",
    "result_from_hits",
]
