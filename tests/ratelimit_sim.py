"""Rate limiting on a simulated clock: a model server, workers that retry like RetryingProvider, and the
real RateLimiter (with its AdaptiveConcurrency) deciding how many requests may be in flight.

Nothing here reads the wall clock or sleeps: events run in virtual time, in order, so a run is exactly
reproducible from its seed and behaves the same on a busy machine as on an idle one. What a busy machine
does to the real client is modelled instead: `cpu_per_response` makes every response wait its turn for
one CPU before the client sees it (requests then pile up in flight, as they do under load).
"""

from __future__ import annotations

import heapq
import math
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from afterimage_cli.config import RetryConfig
from afterimage_cli.engine.attempts import rate_limit_delay
from afterimage_cli.providers.ratelimit import RateLimiter


@dataclass
class ModelServer:
    """An API as the client meets it: an admission limit, a latency, and 429s that are not about load."""

    admit_rps: float | None = None  # token bucket holding one second's worth, full at start (as tests/fakeserver.py)
    admit_until: float = math.inf  # when the admission limit is lifted
    latency: float = 0.05  # an admitted request's answer
    refuse_latency: float = 0.001  # a refusal comes back at once
    stray_429: float = 0.0  # share of admitted requests answered 429 anyway, after the latency
    retry_after: float | None = None  # seconds, sent with every 429

    def __post_init__(self) -> None:
        self._tokens = self.admit_rps or 0.0
        self._stamp = 0.0

    def admit(self, now: float) -> bool:
        """Take a token from the bucket if there is one."""
        if self.admit_rps is None or now >= self.admit_until:
            return True
        self._tokens = min(self.admit_rps, self._tokens + (now - self._stamp) * self.admit_rps)
        self._stamp = now
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            return True
        return False


@dataclass
class Outcome:
    """What a simulated run did."""

    limiter: RateLimiter
    ok: int = 0
    refused: int = 0
    elapsed: float = 0.0
    successes_at: list[float] = field(default_factory=list)
    limits: list[tuple[float, float]] = field(default_factory=list)  # (time, limit) after every response

    @property
    def refused_per_success(self) -> float:
        return self.refused / max(self.ok, 1)

    @property
    def ok_per_s(self) -> float:
        return self.ok / self.elapsed if self.elapsed else 0.0

    def ok_per_s_since(self, since: float) -> float:
        """Successes per second from `since` to the end."""
        return sum(1 for t in self.successes_at if t >= since) / (self.elapsed - since)

    def mean_limit(self, since: float) -> float:
        """The concurrency limit averaged over time from `since` to the end."""
        points = [(t, limit) for t, limit in self.limits if t >= since]
        if len(points) < 2:
            return points[0][1] if points else 0.0
        area = sum((t1 - t0) * limit for (t0, limit), (t1, _) in zip(points, points[1:], strict=False))
        return area / (points[-1][0] - points[0][0])


class _Clock:
    """Virtual time and the events waiting for it."""

    def __init__(self) -> None:
        self.now = 0.0
        self._queue: list[tuple[float, int, Callable[[], None]]] = []
        self._seq = 0

    def __call__(self) -> float:
        return self.now

    def at(self, when: float, action: Callable[[], None]) -> None:
        self._seq += 1
        heapq.heappush(self._queue, (when, self._seq, action))

    def run(self, until: Callable[[], bool]) -> None:
        while self._queue and not until():
            self.now, _, action = heapq.heappop(self._queue)
            action()


def simulate(
    server: ModelServer,
    *,
    successes: int,
    workers: int = 64,
    retry: RetryConfig | None = None,
    cpu_per_response: float = 0.0,
    seed: int = 0,
    **limiter: Any,
) -> Outcome:
    """`workers` workers make calls until `successes` succeeded; each 429 is retried after the delay
    RetryingProvider would wait. Keyword arguments beyond these configure the RateLimiter."""
    retry = retry or RetryConfig()
    clock, rng = _Clock(), random.Random(seed)
    limits = RateLimiter(clock=clock, **limiter)
    outcome = Outcome(limits)
    waiting: list[Callable[[], None]] = []
    cpu_free = 0.0

    def worker() -> None:
        throttled = 0

        def start() -> None:
            delay = limits.try_acquire()
            if math.isinf(delay):
                waiting.append(start)
            elif delay > 0:
                clock.at(clock.now + delay, start)
            elif server.admit(started := clock.now):
                refused = rng.random() < server.stray_429
                clock.at(clock.now + server.latency, lambda: arrive(not refused, started))
            else:
                clock.at(clock.now + server.refuse_latency, lambda: arrive(False, started))

        def arrive(ok: bool, started: float) -> None:
            nonlocal cpu_free
            cpu_free = max(cpu_free, clock.now) + cpu_per_response
            clock.at(cpu_free, lambda: handle(ok, started))

        def handle(ok: bool, started: float) -> None:
            nonlocal throttled
            limits.release(ok=ok, rate_limited=not ok, started=started)
            outcome.limits.append((clock.now, limits.limit))
            for resume in waiting[:]:  # a release wakes every waiter; those that fit go, in order
                waiting.remove(resume)
                resume()
            if ok:
                outcome.ok += 1
                outcome.successes_at.append(clock.now)
                throttled = 0
                start()
            else:
                outcome.refused += 1
                delay = rate_limit_delay(throttled, retry, server.retry_after, rng)
                throttled += 1
                clock.at(clock.now + delay, start)

        start()

    for _ in range(workers):
        worker()
    clock.run(until=lambda: outcome.ok >= successes)
    outcome.elapsed = clock.now
    return outcome
