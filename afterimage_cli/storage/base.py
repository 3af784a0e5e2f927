"""BaseStorage: where rows (and documents) go. The engine uses open_run/append/close; scripts the rest."""

from __future__ import annotations

import asyncio
from abc import ABC, abstractmethod
from collections.abc import Iterable
from typing import Any

Row = dict[str, Any]


def row_fingerprint(row: Row) -> str | None:
    """The run fingerprint a row was written under."""
    meta = row.get("metadata")
    return meta.get("run_fingerprint") if isinstance(meta, dict) else None


class BaseStorage(ABC):
    """Persistence for rows; swappable without touching the generators."""

    # How many rows the store held when open_run found them (None: this storage does not say). A run
    # asked for fewer rows than that reports the surplus instead of claiming an exact count.
    rows_on_open: int | None = None

    @abstractmethod
    def open_run(self, fingerprint: str, *, overwrite: bool = False) -> set[str]:
        """Prepare for appending rows of run `fingerprint`; return the ids already stored.

        Raises OutputConflictError if the store holds rows of another run and `overwrite` is false.
        """

    @abstractmethod
    def append(self, row: Row) -> None:
        """Store one row durably (flushed before returning)."""

    @abstractmethod
    def close(self) -> None:
        """Flush and release the store."""

    @abstractmethod
    def load_conversations(self, limit: int | None = None, offset: int | None = None) -> list[Row]:
        """Rows in write order."""

    @abstractmethod
    def save_documents(self, documents: Iterable[Row]) -> None:
        """Store source documents (id, text, metadata)."""

    @abstractmethod
    def load_documents(self, limit: int | None = None, offset: int | None = None) -> list[Row]:
        """Documents in write order."""

    def save_conversations(self, conversations: Iterable[Row]) -> None:
        for row in conversations:
            self.append(row)

    async def asave_conversations(self, conversations: Iterable[Row]) -> None:
        await asyncio.to_thread(self.save_conversations, list(conversations))

    async def asave_documents(self, documents: Iterable[Row]) -> None:
        await asyncio.to_thread(self.save_documents, list(documents))

    def __enter__(self) -> BaseStorage:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
