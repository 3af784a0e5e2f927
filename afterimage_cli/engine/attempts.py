"""The retry decisions of one call made outside the chat provider stack (embedding requests).

They are RetryingProvider's: an error uses up one of `retry.max_attempts` and waits a jittered backoff
(or the server's Retry-After); a 429 uses up none and is waited out until `retry.rate_limit_patience`
seconds have passed; a non-retryable error (401/403, 404, 400) ends the call at once. Every failed
attempt counts in the run's error budget, when there is one.
"""

from __future__ import annotations

import random

from ..config import RetryConfig
from ..errors import ProviderError
from .retry import ErrorBudget, backoff_delay, rate_limit_delay


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
