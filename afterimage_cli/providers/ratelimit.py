"""Per-model rate limiting: concurrency that adapts to 429s, requests/min and tokens/min buckets.

Everything is awaited: a waiting request sleeps exactly until it may go, or until a release wakes it.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

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


def header(headers: Mapping[str, Any] | None, name: str) -> str | None:
    """A header by name, also under litellm's 'llm_provider-' prefix."""
    if not headers:
        return None
    for key in (name, f"llm_provider-{name}"):
        value = headers.get(key)
        if value is not None:
            return str(value)
    return None


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
        return 0.0 if self.level >= amount else (amount - self.level) / self.rate

    def take(self, amount: float) -> None:
        self.level -= amount


class RateLimiter:
    """Admits requests under max_concurrency (adaptive), rpm and tpm; pauses on Retry-After."""

    def __init__(
        self,
        *,
        max_concurrency: int | None = None,
        rpm: float | None = None,
        tpm: float | None = None,
        adaptive: bool = True,
        min_concurrency: int = 1,
        cut_cooldown: float = 0.2,
        grow_interval: float = 0.5,
    ) -> None:
        self.grow_interval = grow_interval
        self.ceiling = max_concurrency or 1_000_000
        self.limit = float(self.ceiling)
        self.min_concurrency = min_concurrency
        self.adaptive = adaptive
        self.cut_cooldown = cut_cooldown
        now = time.monotonic()
        self.requests = _Bucket(rpm / 60, max(1.0, rpm / 60), max(1.0, rpm / 60), now) if rpm else None
        self.tokens = _Bucket(tpm / 60, tpm / 60 * 10, tpm / 60, now) if tpm else None
        self.in_flight = 0
        self.paused_until = 0.0
        self.cuts = 0
        self._last_cut = 0.0
        self._last_change = 0.0
        self._successes = 0
        self._changed: asyncio.Event | None = None

    def _event(self) -> asyncio.Event:
        if self._changed is None:
            self._changed = asyncio.Event()
        return self._changed

    def _wake(self) -> None:
        event = self._event()
        event.set()
        self._changed = asyncio.Event()

    async def acquire(self, estimated_tokens: int = 0) -> None:
        """Wait until one more request may start."""
        while True:
            now = time.monotonic()
            delay = self.paused_until - now
            if delay <= 0 and self.requests is not None:
                delay = self.requests.wait_time(1, now)
            if delay <= 0 and self.tokens is not None:
                delay = self.tokens.wait_time(estimated_tokens, now)
            if delay <= 0 and self.in_flight < max(self.min_concurrency, int(self.limit)):
                self.in_flight += 1
                if self.requests is not None:
                    self.requests.take(1)
                if self.tokens is not None:
                    self.tokens.take(estimated_tokens)
                return
            event = self._event()
            try:
                await asyncio.wait_for(event.wait(), timeout=delay if delay > 0 else None)
            except TimeoutError:
                pass

    def release(
        self,
        *,
        ok: bool,
        rate_limited: bool = False,
        retry_after: float | None = None,
        headers: Mapping[str, Any] | None = None,
        token_correction: int = 0,
    ) -> None:
        """Record how a request ended; adapt the concurrency limit; wake waiters."""
        self.in_flight -= 1
        now = time.monotonic()
        if self.tokens is not None and token_correction:
            self.tokens.take(token_correction)
        if rate_limited:
            if retry_after:
                self.paused_until = max(self.paused_until, now + retry_after)
            if self.adaptive and now - self._last_cut >= self.cut_cooldown:
                # Cut once per burst: many 429s arriving together are one signal, not many.
                self.limit = max(float(self.min_concurrency), self.limit_in_use() / 2)
                self._last_cut = self._last_change = now
                self._successes = 0
                self.cuts += 1
        elif ok:
            self._successes += 1
            # Grow by one after a full window of successes, and no faster than grow_interval, so a limit
            # found by a cut is probed gently instead of being overrun within a few round trips.
            if (
                self.adaptive
                and self.limit < self.ceiling
                and self._successes >= max(1, int(self.limit))
                and now - self._last_change >= self.grow_interval
            ):
                self.limit = min(float(self.ceiling), self.limit + 1)
                self._successes = 0
                self._last_change = now

        self._apply_headers(headers, now)
        self._wake()

    def limit_in_use(self) -> float:
        """The effective limit: the configured one, or what is actually in flight if that is lower."""
        return min(self.limit, float(max(self.in_flight + 1, self.min_concurrency)))

    def _apply_headers(self, headers: Mapping[str, Any] | None, now: float) -> None:
        """x-ratelimit-remaining-requests: 0 → pause until x-ratelimit-reset-requests."""
        for kind in ("requests", "tokens"):
            remaining = header(headers, f"x-ratelimit-remaining-{kind}")
            if remaining is not None and remaining.strip() in ("0", "0.0"):
                reset = parse_duration(header(headers, f"x-ratelimit-reset-{kind}"))
                if reset:
                    self.paused_until = max(self.paused_until, now + reset)
