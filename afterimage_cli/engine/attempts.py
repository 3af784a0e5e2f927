"""The retry policy of one call, for chat calls (RetryingProvider) and embedding requests alike: an error
uses up one of `retry.max_attempts` and waits a jittered backoff (or the server's Retry-After); a 429 uses
up none and is waited out until `retry.rate_limit_patience` seconds have passed; a non-retryable error
(401/403, 404, 400) ends the call at once. Every failed attempt counts in the run's error budget, when
one is given.
"""

from __future__ import annotations

import random
from typing import TYPE_CHECKING

from ..config import RetryConfig
from ..errors import ProviderError

if TYPE_CHECKING:
    from .retry import ErrorBudget

MAX_RETRY_AFTER = 300.0
# How many 429s in a row a call waits out for just their Retry-After before backing off on top: enough
# that stray 429s (even 20 % of requests) almost never push a call into long backoff.
TRUSTED_RETRY_AFTERS = 6


def rate_limit_delay(throttled: int, cfg: RetryConfig, retry_after: float | None, rng: random.Random) -> float:
    """The wait after a call's n-th 429: the server's Retry-After for the first few (a stray 429 costs
    little), then never less than exponential backoff (a long throttle is not hammered)."""
    trusted = TRUSTED_RETRY_AFTERS if retry_after is not None and retry_after > 0 else 0
    if throttled < trusted:
        return backoff_delay(throttled, cfg, retry_after, rng)
    return max(backoff_delay(throttled - trusted, cfg, None, rng), min(retry_after or 0.0, MAX_RETRY_AFTER))


def backoff_delay(attempt: int, cfg: RetryConfig, retry_after: float | None, rng: random.Random) -> float:
    """The server's Retry-After when it gives one (plus up to 10 % jitter, so waiters do not return in
    lockstep); otherwise jittered exponential backoff."""
    if retry_after is not None and retry_after > 0:
        wait = min(retry_after, MAX_RETRY_AFTER)
        return wait + rng.uniform(0, wait / 10)
    ceiling = min(cfg.max_delay, cfg.base_delay * (2**attempt))
    return rng.uniform(ceiling / 2, ceiling) if ceiling > 0 else 0.0


class CallAttempts:
    """One call's attempts: ask `before()` ahead of each and `delay_after(error)` after a failure."""

    def __init__(self, retry: RetryConfig, budget: ErrorBudget | None = None, rng: random.Random | None = None) -> None:
        self.retry = retry
        self.budget = budget
        self.rng = rng or random.Random()
        self.failures = 0
        self.throttled = 0
        self.waited_on_limits = 0.0

    def before(self) -> None:
        """Stop (RunAborted) when the run's error budget is already spent."""
        if self.budget is not None:
            self.budget.check()

    def delay_after(self, error: ProviderError) -> float | None:
        """Seconds to wait before the next attempt, or None when the call must fail with `error`."""
        if error.kind == "rate_limit":
            delay = rate_limit_delay(self.throttled, self.retry, error.retry_after, self.rng)
            self.throttled += 1
            will_retry = self.waited_on_limits + delay <= self.retry.rate_limit_patience
            self.waited_on_limits += delay if will_retry else 0.0
        else:
            delay = backoff_delay(self.failures, self.retry, error.retry_after, self.rng)
            self.failures += 1
            will_retry = error.retryable and self.failures < self.retry.max_attempts
        if self.budget is not None:
            self.budget.attempt_failed(error)
        return delay if will_retry else None
