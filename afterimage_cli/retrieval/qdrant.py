"""QdrantRetriever: chunks indexed in Qdrant — in memory from a local vectors file (default), in memory
only, or on a server.

The collection name carries a hash of the chunk ids and the embedder identity, so an index is built
once per corpus content and reused by every later run. In local mode (`path`) the vectors are embedded
once into `<path>/<collection>.vectors` (see vector_file) and every run loads them into a private
in-memory collection, so any number of runs read one index at once. On a server a half-built
collection (its point count is short) is rebuilt. Sync methods use `QdrantClient`, async ones
`AsyncQdrantClient`.
"""

from __future__ import annotations

import asyncio
import os
import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..config import RetrieverConfig, RetryConfig
from ..documents.models import Chunk, content_hash
from ..errors import ConfigError, MissingCredentialsError
from ..types import RetrievalHit, RetrievalResult
from .base import BaseRetriever, result_from_hits
from .embeddings import Embedder, Vector, build_embedder
from .sparse import SparseBM25Embedder, SparseVectorData
from .vector_file import SUFFIX, load_or_build

if TYPE_CHECKING:
    from ..engine.retry import ErrorBudget
    from ..resources import Resources

MEMORY = ":memory:"
SPARSE_VECTOR = "bm25"
DENSE_VECTOR = "dense"
UPSERT_BATCH = 256


def index_key(chunks: Sequence[Chunk], embedder: Embedder) -> str:
    """What an index's content depends on: every chunk (id and text) and the vector space.

    Chunk ids are content hashes already; hashing the text too keeps hand-made ids from going stale."""
    return content_hash(embedder.identity, *(f"{c.id}\n{c.text}" for c in chunks))


def index_text(chunk: Chunk) -> str:
    """The text a chunk is indexed by: its document's title helps queries that name the topic."""
    return f"{chunk.title}\n{chunk.text}" if chunk.title else chunk.text


def _point_id(chunk_id: str) -> str:
    """Qdrant wants UUIDs or integers as point ids; the chunk id itself is kept in the payload."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"afterimage:{chunk_id}"))


class QdrantRetriever(BaseRetriever):
    """Top-k chunks for a query from a Qdrant collection built from `chunks`."""

    def __init__(
        self,
        chunks: Sequence[Chunk],
        embedder: Embedder | None = None,
        *,
        path: str = ".afterimage/qdrant",
        url: str | None = None,
        api_key: str | None = None,
        collection: str = "afterimage",
        top_k: int = 3,
        score_threshold: float | None = None,
        client: Any = None,
        async_client: Any = None,
    ) -> None:
        self.chunks = list(chunks)
        self.embedder: Embedder = embedder or SparseBM25Embedder()
        self.path = path
        self.url = url
        self.api_key = api_key
        self.top_k = top_k
        self.score_threshold = score_threshold
        self.collection_name = f"{collection}-{index_key(self.chunks, self.embedder)[:16]}"
        self._client = client
        self._async_client = async_client
        self._owned: set[str] = set()  # which clients this retriever opened (and so closes)
        self._ready: set[str] = set()
        self._points: list[Any] | None = None
        self._embedded = False  # whether this retriever embedded the chunks (rather than reading a vectors file)
        self._async_lock: asyncio.Lock | None = None
        self.build_seconds: float | None = None  # set when this retriever (re)built the index
        self.load_seconds: float | None = None  # set when it loaded an index built before

    @classmethod
    def from_config(
        cls,
        cfg: RetrieverConfig,
        chunks: Sequence[Chunk],
        environ: dict[str, str] | None = None,
        *,
        retry: RetryConfig | None = None,
        budget: ErrorBudget | None = None,
    ) -> QdrantRetriever:
        """Build from the `retriever:` section; a missing API key variable is named."""
        env = dict(os.environ) if environ is None else environ
        if cfg.options:
            raise ConfigError(f"retriever.options: the 'qdrant' retriever takes none (got {', '.join(cfg.options)})")
        api_key = None
        if cfg.api_key_env:
            api_key = env.get(cfg.api_key_env)
            if not api_key:
                raise MissingCredentialsError(f"retriever.api_key_env: set the environment variable {cfg.api_key_env}")
        return cls(
            chunks,
            build_embedder(cfg.embedding, env, retry=retry, budget=budget),
            path=cfg.path,
            url=cfg.url,
            api_key=api_key,
            collection=cfg.collection,
            top_k=cfg.top_k,
            score_threshold=cfg.score_threshold,
        )

    @property
    def local_path(self) -> str | None:
        """The folder of local mode's vectors file (None in memory-only and server mode)."""
        return None if self.url or self.path == MEMORY else self.path

    @property
    def vectors_path(self) -> Path | None:
        return None if self.local_path is None else Path(self.local_path) / f"{self.collection_name}{SUFFIX}"

    def _client_options(self) -> dict[str, Any]:
        if self.url:
            return {"url": self.url, "api_key": self.api_key}
        return {"location": MEMORY}  # local mode too: a private copy per client, so no folder lock

    def _sync_client(self) -> Any:
        if self._client is None:
            from qdrant_client import QdrantClient

            self._client = QdrantClient(**self._client_options())
            self._owned.add("sync")
        return self._client

    def _async_client_now(self) -> Any:
        if self._async_client is None:
            from qdrant_client import AsyncQdrantClient

            self._async_client = AsyncQdrantClient(**self._client_options())
            self._owned.add("async")
        return self._async_client

    # --- index ---------------------------------------------------------------------------------

    def _vectors(self) -> Sequence[Vector]:
        """Every chunk's vector: read from the vectors file in local mode (embedded and saved when missing)."""
        path = self.vectors_path
        if path is None:
            self._embedded = True
            return self.embedder.embed_documents([index_text(c) for c in self.chunks])

        def embed() -> Sequence[Vector]:
            return self.embedder.embed_documents([index_text(c) for c in self.chunks])

        vectors, self._embedded = load_or_build(path, self.embedder.kind, len(self.chunks), embed)
        return vectors

    def points(self) -> list[Any]:
        """Every chunk as a Qdrant point (vectors embedded or read once per retriever)."""
        if self._points is None:
            from qdrant_client import models

            vectors = self._vectors()
            self._points = [
                models.PointStruct(
                    id=_point_id(chunk.id),
                    vector={self._vector_name: self._to_qdrant(vector)},
                    payload={
                        "chunk_id": chunk.id,
                        "document_id": chunk.document_id,
                        "index": chunk.index,
                        "source": chunk.source,
                        "text": chunk.text,
                    },
                )
                for chunk, vector in zip(self.chunks, vectors, strict=True)
            ]
        return self._points

    @property
    def _vector_name(self) -> str:
        return SPARSE_VECTOR if self.embedder.kind == "sparse" else DENSE_VECTOR

    def _to_qdrant(self, vector: Vector) -> Any:
        from qdrant_client import models

        if isinstance(vector, SparseVectorData):
            return models.SparseVector(indices=vector.indices, values=vector.values)
        return vector

    def _collection_params(self) -> dict[str, Any]:
        from qdrant_client import models

        if self.embedder.kind == "sparse":
            # Modifier.IDF: Qdrant weighs query terms by inverse document frequency, which makes the score BM25.
            sparse = {SPARSE_VECTOR: models.SparseVectorParams(modifier=models.Modifier.IDF)}
            return {"collection_name": self.collection_name, "vectors_config": {}, "sparse_vectors_config": sparse}
        points = self.points()
        size = len(points[0].vector[DENSE_VECTOR]) if points else 1
        dense = {DENSE_VECTOR: models.VectorParams(size=size, distance=models.Distance.COSINE)}
        return {"collection_name": self.collection_name, "vectors_config": dense}

    def _batches(self) -> list[list[Any]]:
        points = self.points()
        return [points[i : i + UPSERT_BATCH] for i in range(0, len(points), UPSERT_BATCH)]

    def _record(self, started: float) -> None:
        """How long the index took: built (embedded now), or loaded from the vectors file of an earlier run."""
        seconds = time.perf_counter() - started
        if self.local_path is not None and not self._embedded:
            self.load_seconds = seconds
        else:
            self.build_seconds = seconds

    def ensure_index(self) -> None:
        """Build the index unless a complete one for this content exists (sync client)."""
        if "sync" in self._ready:
            return
        client = self._sync_client()
        name = self.collection_name
        exists = client.collection_exists(name)
        if not (exists and client.count(name, exact=True).count == len(self.chunks)):
            started = time.perf_counter()
            if exists:
                client.delete_collection(name)
            client.create_collection(**self._collection_params())
            for batch in self._batches():
                client.upsert(name, points=batch, wait=True)
            self._record(started)
        self._ready.add("sync")

    async def aensure_index(self) -> None:
        """Build the index unless a complete one for this content exists (async client)."""
        if "async" in self._ready:
            return
        self._async_lock = self._async_lock or asyncio.Lock()
        async with self._async_lock:  # concurrent first queries must not build twice
            if "async" in self._ready:
                return
            client = self._async_client_now()
            name = self.collection_name
            exists = await client.collection_exists(name)
            if not (exists and (await client.count(name, exact=True)).count == len(self.chunks)):
                started = time.perf_counter()
                # Embedding is CPU or blocking HTTP work, and another run may hold the build lock: off the loop.
                await asyncio.to_thread(self.points)
                if exists:
                    await client.delete_collection(name)
                await client.create_collection(**self._collection_params())
                for batch in self._batches():
                    await client.upsert(name, points=batch, wait=True)
                self._record(started)
            self._ready.add("async")

    # --- queries -------------------------------------------------------------------------------

    def _query(self, vector: Vector, top_k: int | None) -> dict[str, Any] | None:
        """query_points arguments, or None when the query has no searchable term."""
        if isinstance(vector, SparseVectorData) and vector.empty:
            return None
        return {
            "collection_name": self.collection_name,
            "query": self._to_qdrant(vector),
            "using": self._vector_name,
            "limit": top_k or self.top_k,
            "with_payload": True,
            "score_threshold": self.score_threshold,
        }

    @staticmethod
    def _result(response: Any) -> RetrievalResult:
        hits = [
            RetrievalHit(id=str(p.payload["chunk_id"]), score=float(p.score), text=str(p.payload["text"]))
            for p in response.points
        ]
        return result_from_hits(hits)

    def get_context_with_metadata(self, query: str, top_k: int | None = None) -> RetrievalResult:
        self.ensure_index()
        request = self._query(self.embedder.embed_query(query), top_k)
        if request is None:
            return result_from_hits([])
        return self._result(self._sync_client().query_points(**request))

    async def aget_context_with_metadata(self, query: str, top_k: int | None = None) -> RetrievalResult:
        await self.aensure_index()
        request = self._query(await self.embedder.aembed_query(query), top_k)
        if request is None:
            return result_from_hits([])
        return self._result(await self._async_client_now().query_points(**request))

    # --- lifecycle -----------------------------------------------------------------------------

    def _close_sync(self) -> None:
        if "sync" in self._owned and self._client is not None:
            self._client.close()
            self._client = None
            self._owned.discard("sync")
            self._ready.discard("sync")

    def close(self) -> None:
        """Close the sync client this retriever opened (await `aclose` for the async one too)."""
        self._close_sync()

    async def aclose(self) -> None:
        self._close_sync()
        if "async" in self._owned and self._async_client is not None:
            await self._async_client.close()
            self._async_client = None
            self._owned.discard("async")
            self._ready.discard("async")


def build_qdrant_retriever(
    cfg: RetrieverConfig, chunks: Sequence[Chunk], resources: Resources | None = None
) -> QdrantRetriever:
    """The registry factory for `retriever.type: qdrant`; the run's retry settings and error budget
    (from `resources`) apply to its embedding requests."""
    if resources is None:
        return QdrantRetriever.from_config(cfg, chunks)
    return QdrantRetriever.from_config(cfg, chunks, retry=resources.cfg.retry, budget=resources.budget)
