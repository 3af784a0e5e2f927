"""The response cache: SQLite, keyed by a hash of the request, so a re-run pays only for what changed."""

from __future__ import annotations

import hashlib
import os
import sqlite3
import time
from collections.abc import Callable
from contextvars import ContextVar
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from ..errors import ConfigError
from .base import BaseProvider, LLMProvider, LLMResponse, Messages, StructuredLLMResponse
from .logging import warn
from .structured import Schema, json_schema_of, parse_structured
from .tool_calls import tool_options

MAX_PENDING = 10_000  # answers kept while SQLite refuses writes; past this they go uncached
MAX_RETRY_WAIT = 60.0  # seconds between tries to write while SQLite keeps refusing


@dataclass
class CallScope:
    """Which run seed and item a call belongs to and its position in that item, so identical prompts of
    different items, or of runs with different seeds (which should get different samples), never share
    an answer."""

    item: int
    seed: int = 0
    seq: int = 0
    attempt: int = 0  # the item's attempt (a failed item is run again): batch mode's custom ids tell them apart
    batch_calls: dict[str, int] = field(default_factory=dict)  # request digest → times sent (batch custom ids)


current_scope: ContextVar[CallScope | None] = ContextVar("current_scope", default=None)


def default_cache_path() -> Path:
    """$XDG_CACHE_HOME/afterimage/responses.sqlite (~/.cache/… by default)."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "afterimage" / "responses.sqlite"


def open_response_cache(path: str | Path, **options: Any) -> ResponseCache | None:
    """The cache at `path`, or None (with a warning) while another process keeps it locked past the busy
    timeout: a run without its cache pays for calls again but finishes. A path that cannot hold a
    cache at all is a config error."""
    try:
        return ResponseCache(path, **options)
    except sqlite3.Error as exc:
        if exc.sqlite_errorcode & 0xFF in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED):
            warn(f"response cache {path}: {exc}; this run goes without it")
            return None
        raise ConfigError(f"cache.path: {path} cannot hold the response cache: {exc}") from None
    except OSError as exc:
        raise ConfigError(f"cache.path: {path} cannot hold the response cache: {exc.strerror or exc}") from None


class ResponseCache:
    """A key → response table that any number of afterimage processes share (pipelines, parallel runs).

    Puts stay in memory and are written in one short explicit transaction every `flush_every` puts or
    `flush_interval` seconds, and at close. So no process holds SQLite's write lock while it waits for
    anything else (a slow call, a full pipe): another process's write waits at most for one such
    transaction (`busy_timeout`), and reads never wait (WAL). A write that still fails is kept and tried
    again later with a warning; the run goes on. A crash loses at most the answers not yet written.
    """

    def __init__(
        self,
        path: str | Path,
        *,
        flush_every: int = 64,
        flush_interval: float = 1.0,
        busy_timeout: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # isolation_level=None: no implicit transaction (Python's default opens one at the first INSERT and
        # keeps the write lock until commit); the only transactions are flush()'s own.
        self._db = sqlite3.connect(self.path, timeout=busy_timeout, isolation_level=None, check_same_thread=False)
        try:
            if self._db.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
                self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.execute("CREATE TABLE IF NOT EXISTS responses (key TEXT PRIMARY KEY, value BLOB NOT NULL)")
        except BaseException:
            self._db.close()
            raise
        self.flush_every = flush_every
        self.flush_interval = flush_interval
        self._clock = clock
        self._pending: dict[str, bytes] = {}
        self._failures = 0  # flushes failed in a row: each doubles the wait before the next try
        self._next_flush = clock() + flush_interval

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
        data = self._pending.get(key)
        if data is None:
            try:
                row = self._db.execute("SELECT value FROM responses WHERE key = ?", (key,)).fetchone()
            except sqlite3.Error as exc:  # a read is only ever a lost hit, never a reason to stop
                warn(f"response cache {self.path}: a read failed ({exc}); that call is made again")
                row = None
            data = None if row is None else row[0]
        self._flush_when_due()
        if data is None:
            return None
        return LLMResponse.model_validate({**orjson.loads(data), "cached": True})

    def put(self, key: str, response: LLMResponse) -> None:
        data = response.model_dump(exclude={"raw_response", "headers", "cached", "parsed"})
        self._pending[key] = orjson.dumps(data)
        self._flush_when_due()

    def _flush_when_due(self) -> None:
        # After a refused write only the (doubling) timer retries, so a locked file costs one wait per retry.
        full = not self._failures and len(self._pending) >= self.flush_every
        if full or self._clock() >= self._next_flush:
            self.flush()

    def flush(self) -> bool:
        """Write the pending answers in one transaction; False (with a warning) when SQLite refused."""
        if self._pending:
            try:
                self._write(list(self._pending.items()))
            except sqlite3.Error as exc:
                self._failed(exc)
                return False
            self._pending.clear()
        self._failures = 0
        self._next_flush = self._clock() + self.flush_interval
        return True

    def _write(self, rows: list[tuple[str, bytes]]) -> None:
        self._db.execute("BEGIN IMMEDIATE")  # the write lock now (waiting up to busy_timeout), not mid-way
        try:
            self._db.executemany("INSERT OR REPLACE INTO responses (key, value) VALUES (?, ?)", rows)
            self._db.execute("COMMIT")
        except BaseException:
            if self._db.in_transaction:
                self._db.execute("ROLLBACK")
            raise

    def _failed(self, exc: sqlite3.Error) -> None:
        self._failures += 1
        self._next_flush = self._clock() + min(self.flush_interval * 2**self._failures, MAX_RETRY_WAIT)
        if len(self._pending) > MAX_PENDING:
            self._pending.clear()
            warn(f"response cache {self.path}: {exc}; some answers were not cached (a re-run asks for them again)")
        else:
            warn(f"response cache {self.path}: {exc}; answers are kept in memory and written later")

    def close(self) -> None:
        self.flush()
        self._db.close()


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
        # The tools offered (and the choice among them) are part of the request; `tools=None` or [] is none,
        # the same request as one that never mentions tools, so it keeps that request's key.
        tools, tool_choice, rest = tool_options(extra)
        offered = {"tools": tools} if tools else {}
        if tools and tool_choice is not None:
            offered["tool_choice"] = tool_choice
        params = {**self.params, **rest, **offered}
        key = ResponseCache.key(self.model_name, messages, params, scope, self.served_model_id)
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
