"""The retriever protocol (get_context, aget_context and the _with_metadata variants) and helpers."""

from __future__ import annotations

import asyncio
from typing import Protocol, runtime_checkable

from ..types import NO_RETRIEVAL_CONTEXT, RetrievalHit, RetrievalResult


@runtime_checkable
class Retriever(Protocol):
    """The retriever protocol. A plugin may implement only `get_context`: `aretrieve` uses the richest
    method a retriever has, and only the `_with_metadata` variants report hit ids and scores."""

    def get_context(self, query: str) -> str: ...

    async def aget_context(self, query: str) -> str: ...

    def get_context_with_metadata(self, query: str) -> RetrievalResult: ...

    async def aget_context_with_metadata(self, query: str) -> RetrievalResult: ...


class BaseRetriever:
    """Derives `get_context` / `aget_context` from the `_with_metadata` methods a subclass implements."""

    def get_context_with_metadata(self, query: str, top_k: int | None = None) -> RetrievalResult:
        raise NotImplementedError

    async def aget_context_with_metadata(self, query: str, top_k: int | None = None) -> RetrievalResult:
        return await asyncio.to_thread(self.get_context_with_metadata, query, top_k)

    def get_context(self, query: str) -> str:
        return self.get_context_with_metadata(query).text

    async def aget_context(self, query: str) -> str:
        return (await self.aget_context_with_metadata(query)).text

    def close(self) -> None:
        return None

    async def aclose(self) -> None:
        self.close()


def result_from_hits(hits: list[RetrievalHit]) -> RetrievalResult:
    """The context text for some hits, best first; the canonical empty string when there are none."""
    if not hits:
        return RetrievalResult(text=NO_RETRIEVAL_CONTEXT, hits=[])
    return RetrievalResult(text="\n\n".join(hit.text for hit in hits), hits=hits)


async def aretrieve(retriever: object, query: str) -> RetrievalResult:
    """Ask any retriever with the richest method it has: async with metadata first, plain sync text last."""
    method = getattr(retriever, "aget_context_with_metadata", None)
    if method is not None:
        result: RetrievalResult = await method(query)
        return result
    method = getattr(retriever, "get_context_with_metadata", None)
    if method is not None:
        return await asyncio.to_thread(method, query)  # type: ignore[no-any-return]
    method = getattr(retriever, "aget_context", None)
    if method is not None:
        text = await method(query)
    elif (method := getattr(retriever, "get_context", None)) is not None:
        text = await asyncio.to_thread(method, query)
    else:
        raise TypeError(f"{type(retriever).__name__} has no get_context method")
    return RetrievalResult(text=text or NO_RETRIEVAL_CONTEXT, hits=[])
