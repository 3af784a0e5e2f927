"""The response cache: SQLite, keyed by a hash of the request, so a re-run pays only for what changed."""

from __future__ import annotations

import hashlib
import os
import sqlite3
import time
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from .base import BaseProvider, LLMProvider, LLMResponse, Messages, StructuredLLMResponse
from .structured import Schema, json_schema_of, parse_structured


@dataclass
class CallScope:
    """Which run seed and item a call belongs to and its position in that item, so identical prompts of
    different items, or of runs with different seeds (which should get different samples), never share
    an answer."""

    item: int
    seed: int = 0
    seq: int = 0


current_scope: ContextVar[CallScope | None] = ContextVar("current_scope", default=None)


def default_cache_path() -> Path:
    """$XDG_CACHE_HOME/afterimage/responses.sqlite (~/.cache/… by default)."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "afterimage" / "responses.sqlite"


class ResponseCache:
    """A key → response table; writes are committed in small batches to keep the hot path cheap."""

    def __init__(self, path: str | Path, *, commit_every: int = 64, commit_interval: float = 1.0) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(self.path, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute("CREATE TABLE IF NOT EXISTS responses (key TEXT PRIMARY KEY, value BLOB NOT NULL)")
        self._pending = 0
        self._last_commit = time.monotonic()
        self.commit_every = commit_every
        self.commit_interval = commit_interval

    @staticmethod
    def key(
        model: str, messages: Messages, params: dict[str, Any], scope: CallScope | None, served: str | None = None
    ) -> str:
        """The request's hash. `served` is the model an api_base server said it serves: another model loaded
        behind the same URL misses, a replica serving the same one hits."""
        payload: dict[str, Any] = {"model": model, "messages": messages, "params": params}
        if scope is not None:
            payload["scope"] = [scope.seed, scope.item, scope.seq]
        if served is not None:
            payload["served"] = served
        return hashlib.sha256(orjson.dumps(payload, option=orjson.OPT_SORT_KEYS)).hexdigest()

    def get(self, key: str) -> LLMResponse | None:
        row = self._db.execute("SELECT value FROM responses WHERE key = ?", (key,)).fetchone()
        if row is None:
            return None
        return LLMResponse.model_validate({**orjson.loads(row[0]), "cached": True})

    def put(self, key: str, response: LLMResponse) -> None:
        data = response.model_dump(exclude={"raw_response", "headers", "cached"})
        if "parsed" in data:
            data.pop("parsed")
        self._db.execute("INSERT OR REPLACE INTO responses (key, value) VALUES (?, ?)", (key, orjson.dumps(data)))
        self._pending += 1
        now = time.monotonic()
        if self._pending >= self.commit_every or now - self._last_commit >= self.commit_interval:
            self.commit()

    def commit(self) -> None:
        self._db.commit()
        self._pending = 0
        self._last_commit = time.monotonic()

    def close(self) -> None:
        self.commit()
        self._db.close()

    def __len__(self) -> int:
        return int(self._db.execute("SELECT COUNT(*) FROM responses").fetchone()[0])


class CachedProvider(BaseProvider):
    """Answers from the cache when the same request was answered before; otherwise asks `inner`."""

    def __init__(self, inner: LLMProvider, cache: ResponseCache, params: dict[str, Any], on_hit: Any = None) -> None:
        self.inner = inner
        self.cache = cache
        self.model_name = inner.model_name
        self.params = params
        self.on_hit = on_hit

    def _key(self, messages: Messages, extra: dict[str, Any]) -> str:
        scope = current_scope.get()
        key = ResponseCache.key(self.model_name, messages, {**self.params, **extra}, scope, self.served_model_id)
        if scope is not None:
            scope.seq += 1
        return key

    def _hit(self, response: LLMResponse) -> None:
        if self.on_hit is not None:
            self.on_hit(response)

    async def acomplete(self, messages: Messages, **kwargs: Any) -> LLMResponse:
        key = self._key(messages, kwargs)
        hit = self.cache.get(key)
        if hit is not None:
            self._hit(hit)
            return hit
        response = await self.inner.acomplete(messages, **kwargs)
        self.cache.put(key, response)
        return response

    async def acomplete_structured(self, messages: Messages, schema: Schema, **kwargs: Any) -> StructuredLLMResponse:
        key = self._key(messages, {**kwargs, "schema": json_schema_of(schema)})
        hit = self.cache.get(key)
        if hit is not None:
            self._hit(hit)
            return StructuredLLMResponse(**hit.model_dump(), parsed=parse_structured(hit.text, schema))
        response = await self.inner.acomplete_structured(messages, schema, **kwargs)
        self.cache.put(key, response)
        return response

    async def aclose(self) -> None:
        await self.inner.aclose()
