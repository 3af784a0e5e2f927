"""Per-model rate limiting: concurrency that adapts to 429s, requests/min and tokens/min buckets.

Everything is awaited: a waiting request sleeps exactly until it may go, or until a release wakes it.
"""

from __future__ import annotations

import asyncio
import heapq
import math
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from .adaptive import AdaptiveConcurrency

_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h)")
_UNIT = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}


def parse_duration(value: str | None) -> float | None:
    """'1s', '6m0s', '250ms', '0.5' → seconds (OpenAI's x-ratelimit-reset-* format, or plain seconds)."""
    if value is None:
        return None
    text = str(value).strip()
    try:
        return float(text)
    except ValueError:
        pass
    parts = _DURATION.findall(text)
    return sum(float(n) * _UNIT[u] for n, u in parts) if parts else None


def reset_seconds(value: str | None, wall_now: float) -> float | None:
    """Seconds until a limit resets: a duration ('1s', '6m0s': OpenAI's x-ratelimit-reset-*) or an RFC 3339
    time ('2025-01-01T00:00:30Z': Anthropic's anthropic-ratelimit-*-reset), against the wall clock."""
    if value is None or "T" not in value:
        return parse_duration(value)
    try:
        moment = datetime.fromisoformat(value.strip())
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return max(0.0, moment.timestamp() - wall_now)


# (remaining, reset) header pairs of the limits a provider reports: OpenAI's, then Anthropic's.
LIMIT_HEADERS = tuple((f"x-ratelimit-remaining-{k}", f"x-ratelimit-reset-{k}") for k in ("requests", "tokens")) + tuple(
    (f"anthropic-ratelimit-{k}-remaining", f"anthropic-ratelimit-{k}-reset")
    for k in ("requests", "tokens", "input-tokens", "output-tokens")
)


def header(headers: Mapping[str, Any] | None, name: str) -> str | None:
    """A header by name, also under litellm's 'llm_provider-' prefix."""
    if not headers:
        return None
    for key in (name, f"llm_provider-{name}"):
        value = headers.get(key)
        if value is not None:
            return str(value)
    return None


def estimate_tokens(messages: list[dict[str, Any]], completion_allowance: int) -> int:
    """Tokens a request may use, for a tokens-per-minute bucket (corrected after the answer)."""
    return sum(len(str(m.get("content") or "")) for m in messages) // 4 + completion_allowance


@dataclass
class _Bucket:
    """A token bucket refilled continuously at `rate` per second up to `capacity`."""

    rate: float
    capacity: float
    level: float
    stamp: float

    def wait_time(self, amount: float, now: float) -> float:
        self.level = min(self.capacity, self.level + (now - self.stamp) * self.rate)
        self.stamp = now
        amount = min(amount, self.capacity)
        # Within rounding of the amount counts as there: a wait of 1e-17 s would never end on a clock
        # that adds it to 0.6.
        return 0.0 if self.level >= amount - 1e-9 else (amount - self.level) / self.rate

    def take(self, amount: float) -> None:
        self.level -= amount


class RateLimiter:
    """Admits requests under max_concurrency (adaptive), rpm and tpm; pauses on rate-limit headers.

    Retry-After belongs to the request that got it (the retry waits for it); the shared limit reacts to
    the rate of 429s instead, so a few stray ones never stall every request. `clock` is injectable so the
    admission logic can be driven on a simulated clock (tests/ratelimit_sim.py).
    """

    def __init__(
        self,
        *,
        max_concurrency: int | None = None,
        rpm: float | None = None,
        tpm: float | None = None,
        adaptive: bool = True,
        min_concurrency: int = 1,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self.clock = clock
        self.wall_clock = wall_clock  # for reset times given as dates (Anthropic's)
        # What it was made with, so another process can hold the same limits (the Ray executor's coordinator).
        self.settings: dict[str, Any] = {
            "max_concurrency": max_concurrency,
            "rpm": rpm,
            "tpm": tpm,
            "adaptive": adaptive,
            "min_concurrency": min_concurrency,
        }
        self.ceiling = float(max_concurrency or 1_000_000)
        self.adaptive = AdaptiveConcurrency(self.ceiling, float(min_concurrency)) if adaptive else None
        self.min_concurrency = min_concurrency
        now = clock()
        self.requests = _Bucket(rpm / 60, max(1.0, rpm / 60), max(1.0, rpm / 60), now) if rpm else None
        self.tokens = _Bucket(tpm / 60, tpm / 60 * 10, tpm / 60, now) if tpm else None
        self.in_flight = 0
        self.paused_until = 0.0
        self.answer_time: float | None = None  # running mean of how long a successful request takes
        self._held: list[float] = []  # when the slots kept by refused requests come free (a heap)
        self._changed: asyncio.Event | None = None

    @property
    def limit(self) -> float:
        return self.adaptive.limit if self.adaptive else self.ceiling

    @property
    def cuts(self) -> int:
        return self.adaptive.cuts if self.adaptive else 0

    def _event(self) -> asyncio.Event:
        if self._changed is None:
            self._changed = asyncio.Event()
        return self._changed

    def _wake(self) -> None:
        event = self._event()
        event.set()
        self._changed = asyncio.Event()

    def try_acquire(self, estimated_tokens: int = 0) -> float:
        """Start one more request if it may go now (0.0); otherwise the seconds until it may, or math.inf
        when it must wait for a request in flight to end."""
        now = self.clock()
        while self._held and self._held[0] <= now:
            heapq.heappop(self._held)
            self.in_flight -= 1
        delay = self.paused_until - now
        if delay <= 0 and self.requests is not None:
            delay = self.requests.wait_time(1, now)
        if delay <= 0 and self.tokens is not None:
            delay = self.tokens.wait_time(estimated_tokens, now)
        if delay > 0:
            return delay
        if self.in_flight >= max(self.min_concurrency, round(self.limit)):
            return self._held[0] - now if self._held else math.inf
        self.in_flight += 1
        if self.requests is not None:
            self.requests.take(1)
        if self.tokens is not None:
            self.tokens.take(estimated_tokens)
        return 0.0

    async def acquire(self, estimated_tokens: int = 0) -> float:
        """Wait until one more request may start; the time it started (to hand back to `release`)."""
        while (delay := self.try_acquire(estimated_tokens)) > 0:
            event = self._event()
            try:
                await asyncio.wait_for(event.wait(), timeout=None if math.isinf(delay) else delay)
            except TimeoutError:
                pass
        return self.clock()

    def give_back(self, count: int) -> None:
        """Undo `count` admissions that were never used (a granted permit no request took)."""
        self.in_flight -= count
        if self.requests is not None:
            self.requests.level = min(self.requests.capacity, self.requests.level + count)
        self._wake()

    def release(
        self,
        *,
        ok: bool,
        rate_limited: bool = False,
        headers: Mapping[str, Any] | None = None,
        token_correction: int = 0,
        started: float | None = None,
    ) -> None:
        """Record how a request that began at `started` ended; adapt the concurrency limit; wake waiters.

        A refused request keeps its slot until a successful one would have ended: refusals come back at
        once, and slots they freed early would let the limit admit far more requests per second than
        limit / answer time, the rate its cuts aim at."""
        now = self.clock()
        in_use = self.in_flight
        if started is not None and ok:
            took = now - started
            self.answer_time = took if self.answer_time is None else self.answer_time + 0.1 * (took - self.answer_time)
        if rate_limited and started is not None and self.answer_time and started + self.answer_time > now:
            heapq.heappush(self._held, started + self.answer_time)
        else:
            self.in_flight -= 1
        if self.tokens is not None and token_correction:
            self.tokens.take(token_correction)
        if self.adaptive is not None:
            self.adaptive.record(ok=ok, rate_limited=rate_limited, in_flight=in_use, now=now)
        self._apply_headers(headers, now)
        self._wake()

    def _apply_headers(self, headers: Mapping[str, Any] | None, now: float) -> None:
        """A limit the headers report used up (x-ratelimit-remaining-requests: 0, anthropic-ratelimit-tokens-
        remaining: 0, …) pauses the model until that limit's reset."""
        if not headers:
            return
        for remaining_name, reset_name in LIMIT_HEADERS:
            remaining = header(headers, remaining_name)
            if remaining is not None and remaining.strip() in ("0", "0.0"):
                reset = reset_seconds(header(headers, reset_name), self.wall_clock())
                if reset:
                    self.paused_until = max(self.paused_until, now + reset)
