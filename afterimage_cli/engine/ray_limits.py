"""Rate limits that stay global across Ray workers: one coordinator holds each model's RateLimiter (rpm, tpm,
max_concurrency, adaptive concurrency) for the whole run, and every worker's calls are admitted by it.

A worker asks for permits in batches (as many as its calls waiting at that moment) and sends releases
coalesced per event-loop tick, so a busy worker pays one round trip for many calls. Each release carries how
its call ended (ok, 429, the rate-limit headers), so a 429 seen by any worker cuts the one shared limit."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Callable, Mapping
from typing import Any

from ..providers.base import LLMProvider
from ..providers.ratelimit import RateLimiter
from .retry import RetryingProvider

RETURN_UNUSED_AFTER = 0.05  # seconds a granted permit may wait for a taker before it goes back


def shared_limiters(roles: Mapping[str, tuple[LLMProvider, LLMProvider]]) -> dict[str, RetryingProvider]:
    """role → the rate-limited provider its calls go through, each provider once (under its first role).

    The driver and every worker build the same run from the same config, so the roles name the same limiters
    in each process: the key the coordinator holds a limiter under."""
    found: dict[str, RetryingProvider] = {}
    seen: set[int] = set()
    for role, (_, called) in roles.items():
        layer: Any = called
        while layer is not None and not isinstance(layer, RetryingProvider):
            layer = getattr(layer, "inner", None)
        if layer is None or layer.limiter is None or id(layer) in seen:
            continue
        seen.add(id(layer))
        found[role] = layer
    return found


class LimitsCoordinator:
    """The run's limiters, in one process (a Ray actor): grants permits and takes back how calls ended."""

    def __init__(self, settings: dict[str, dict[str, Any]]) -> None:
        self.limiters = {key: RateLimiter(**kwargs) for key, kwargs in settings.items()}
        self.granted = 0
        self.grants = 0
        self.held: dict[str, Counter[str]] = {}  # owner (a worker) → permits it holds, by key

    def _hold(self, owner: str, key: str, count: int) -> None:
        self.held.setdefault(owner, Counter())[key] += count

    async def grant(self, key: str, count: int, estimated_tokens: int, owner: str = "") -> tuple[int, float]:
        """Wait until one request of `key` may start, then admit up to `count` - 1 more that may start now;
        (how many were admitted, the coordinator's clock) — the clock lets a worker report start times in it."""
        limiter = self.limiters[key]
        await limiter.acquire(estimated_tokens)
        admitted = 1
        while admitted < count and limiter.try_acquire(estimated_tokens) == 0.0:
            admitted += 1
        self.granted += admitted
        self.grants += 1
        self._hold(owner, key, admitted)
        return admitted, limiter.clock()

    def release(
        self, key: str, endings: list[tuple[bool, bool, dict[str, str] | None, int, float | None]], owner: str = ""
    ) -> None:
        """How calls admitted earlier ended: (ok, rate limited, rate-limit headers, token correction, started)."""
        limiter = self.limiters[key]
        for ok, limited, headers, correction, started in endings:
            limiter.release(ok=ok, rate_limited=limited, headers=headers, token_correction=correction, started=started)
        self._hold(owner, key, -len(endings))

    def give_back(self, key: str, count: int, owner: str = "") -> None:
        self.limiters[key].give_back(count)
        self._hold(owner, key, -count)

    def forget(self, owner: str) -> None:
        """A worker died: the permits it held (calls in flight that will never end) free their slots."""
        for key, count in self.held.pop(owner, Counter()).items():
            if count > 0:
                self.limiters[key].give_back(count)

    def status(self) -> dict[str, dict[str, float]]:
        """Per key: the concurrency limit in force, its cuts, and requests in flight; and the grant counts."""
        out = {
            k: {"limit": lim.limit, "cuts": lim.cuts, "in_flight": lim.in_flight} for k, lim in self.limiters.items()
        }
        return {**out, "_grants": {"grants": self.grants, "granted": self.granted}}


def _limit_headers(headers: Mapping[str, Any] | None) -> dict[str, str] | None:
    """Only the headers the limiter reads (rate-limit remaining and reset), to keep each release small."""
    if not headers:
        return None
    kept = {str(k): str(v) for k, v in headers.items() if "ratelimit" in str(k).lower()}
    return kept or None


class SharedLimiter:
    """A worker's stand-in for a RateLimiter, with its interface: admissions come from the coordinator."""

    def __init__(self, coordinator: Any, key: str, owner: str, clock: Callable[[], float] = time.monotonic) -> None:
        self.coordinator = coordinator
        self.key = key
        self.owner = owner  # the worker, so the permits it holds are freed if it dies
        self.clock = clock
        self.limit = 0.0  # shown by a monitor; the worker's is never displayed
        self.cuts = 0
        self._permits = 0
        self._waiting = 0
        self._asking: asyncio.Future[None] | None = None
        self._offset = 0.0  # coordinator clock - this process's clock, from the last grant
        self._endings: list[tuple[bool, bool, dict[str, str] | None, int, float | None]] = []
        self._flush_scheduled = False
        self._return_scheduled = False

    async def acquire(self, estimated_tokens: int = 0) -> float:
        """Wait for a permit; when it started, in the coordinator's clock (to hand back to `release`)."""
        self._waiting += 1
        try:
            while self._permits == 0:
                if self._asking is None:
                    self._asking = asyncio.ensure_future(self._ask(estimated_tokens))
                await asyncio.shield(self._asking)
            self._permits -= 1
        finally:
            self._waiting -= 1
        return self.clock() + self._offset

    async def _ask(self, estimated_tokens: int) -> None:
        try:
            await asyncio.sleep(0)  # let the calls waiting in this tick join the request
            count, their_clock = await self.coordinator.grant.remote(
                self.key, max(1, self._waiting), estimated_tokens, self.owner
            )
            self._offset = their_clock - self.clock()
            self._permits += count
            if self._permits > self._waiting and not self._return_scheduled:
                self._return_scheduled = True
                asyncio.get_running_loop().call_later(RETURN_UNUSED_AFTER, self._return_unused)
        finally:
            self._asking = None

    def _return_unused(self) -> None:
        """Permits no call took (a waiter was cancelled) hold a slot of the global limit: give them back."""
        self._return_scheduled = False
        spare = self._permits - self._waiting
        if spare > 0:
            self._permits -= spare
            self.coordinator.give_back.remote(self.key, spare, self.owner)

    def release(
        self,
        *,
        ok: bool,
        rate_limited: bool = False,
        headers: Mapping[str, Any] | None = None,
        token_correction: int = 0,
        started: float | None = None,
    ) -> None:
        """Queue how a call ended; the queue goes to the coordinator once per event-loop tick."""
        self._endings.append((ok, rate_limited, _limit_headers(headers), token_correction, started))
        if not self._flush_scheduled:
            self._flush_scheduled = True
            asyncio.get_running_loop().call_soon(self._flush)

    def _flush(self) -> None:
        self._flush_scheduled = False
        endings, self._endings = self._endings, []
        if endings:
            self.coordinator.release.remote(self.key, endings, self.owner)
