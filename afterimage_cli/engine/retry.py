"""Retries that fit the error, and the error budget that stops a run whose server is broken."""

from __future__ import annotations

import asyncio
import random
import time
from collections import deque
from typing import TYPE_CHECKING, Any

from ..config import ErrorBudgetConfig, RetryConfig
from ..errors import ProviderError, RunAborted
from ..monitor import GenerationMonitor
from ..providers.base import BaseProvider, LLMProvider, LLMResponse, Messages, StructuredLLMResponse
from ..providers.ratelimit import RateLimiter, estimate_tokens
from ..providers.structured import Schema
from .attempts import CallAttempts
from .outage import Clock, OutageGate, Sleep

if TYPE_CHECKING:
    from .spend import SpendLimit


class ErrorBudget:
    """Stops a run whose server is broken: a server silent past its outage allowance (see OutageGate), or
    too high a failure rate over recent items. One per run, shared by every provider."""

    def __init__(self, cfg: ErrorBudgetConfig, *, clock: Clock = time.monotonic, sleep: Sleep = asyncio.sleep) -> None:
        self.cfg = cfg
        self.window: deque[bool] = deque(maxlen=cfg.window)
        self.reason: str | None = None
        self.last_error: str = ""
        self.gates: dict[str, OutageGate] = {}
        self._clock = clock
        self._sleep = sleep

    def outage_gate(self, server: str, base_delay: float) -> OutageGate:
        """The gate of one server (by name), shared by every model served there."""
        if server not in self.gates:
            self.gates[server] = OutageGate(
                server,
                threshold=self.cfg.max_consecutive_failures,
                max_outage_s=self.cfg.max_outage_s,
                base_delay=base_delay,
                stop=self.stop,
                clock=self._clock,
                sleep=self._sleep,
            )
        return self.gates[server]

    def attempt_failed(self, error: ProviderError) -> None:
        """Keep the last error, for the stop messages that quote it (outages are the gates' business)."""
        self.last_error = str(error)

    def item_done(self, ok: bool) -> None:
        self.window.append(ok)
        failures = self.window.count(False)
        if len(self.window) >= min(self.cfg.window, 10) and failures / len(self.window) > self.cfg.max_failure_rate:
            self.trip(
                f"{failures} of the last {len(self.window)} items failed "
                f"(max_failure_rate {self.cfg.max_failure_rate}; last error: {self.last_error})"
            )

    def stop(self, reason: str) -> None:
        """Record why the run stops (the first reason wins); every later check raises it."""
        if self.reason is None:
            self.reason = reason

    def trip(self, reason: str) -> None:
        self.stop(reason)
        raise RunAborted(f"stopping: {self.reason}")

    def check(self) -> None:
        if self.reason is not None:
            raise RunAborted(f"stopping: {self.reason}")


class RetryingProvider(BaseProvider):
    """Wraps a provider: rate limits and retries each call, counts every attempt, feeds the error budget,
    and waits out an outage of its server (`outage`) instead of spending attempts on it."""

    def __init__(
        self,
        inner: LLMProvider,
        retry: RetryConfig,
        budget: ErrorBudget,
        monitor: GenerationMonitor,
        limiter: RateLimiter | None = None,
        completion_allowance: int = 256,
        spend: SpendLimit | None = None,
        outage: OutageGate | None = None,
    ) -> None:
        self.spend = spend
        self.inner = inner
        self.model_name = inner.model_name
        self.retry = retry
        self.budget = budget
        self.monitor = monitor
        self.limiter = limiter
        self.completion_allowance = completion_allowance
        self.outage = outage
        self._rng = random.Random()

    def _estimate(self, messages: Messages) -> int:
        """Tokens a request may use, for the tokens-per-minute bucket (corrected after the answer)."""
        return estimate_tokens(messages, self.completion_allowance)

    async def _attempt(self, call: Any, estimate: int) -> Any:
        if self.limiter is None:
            return await call()
        started = await self.limiter.acquire(estimate)
        try:
            response = await call()
        except ProviderError as error:
            limited = error.kind == "rate_limit"
            paid = error.response.total_token_count - estimate if error.response is not None else 0
            self.limiter.release(
                ok=False, rate_limited=limited, headers=error.headers, token_correction=paid, started=started
            )
            raise
        except BaseException:
            self.limiter.release(ok=False, started=started)
            raise
        correction = response.total_token_count - estimate
        self.limiter.release(ok=True, headers=response.headers, token_correction=correction, started=started)
        return response

    async def _send(self, call: Any, estimate: int) -> Any:
        """One attempt, through the outage gate: held while the server is down, unless it is the probe."""
        gate = self.outage
        if gate is None:
            return await self._attempt(call, estimate)
        probe = await gate.admit()
        try:
            response = await (self._probe(call, estimate, gate) if probe else self._attempt(call, estimate))
        except ProviderError as error:
            gate.attempt_failed(error)
            raise
        finally:
            if probe:
                gate.probe_ended()
        gate.answered()
        return response

    async def _probe(self, call: Any, estimate: int, gate: OutageGate) -> Any:
        """The probe gets no longer than the outage has left, so a hung server cannot stretch max_outage_s."""
        try:
            async with asyncio.timeout(max(gate.remaining(), 0.0)):
                return await self._attempt(call, estimate)
        except TimeoutError:
            raise ProviderError(
                f"{self.model_name}: no answer before max_outage_s ran out", retryable=True, kind="timeout"
            ) from None

    async def _attempts(self, call: Any, messages: Messages) -> Any:
        """Call until success. Errors use up `max_attempts`; 429s do not (they are back-pressure, not
        failure) and are retried until `rate_limit_patience` seconds of waiting have passed; neither do
        failures while the server is down (the call waits for it in the outage gate)."""
        estimate = self._estimate(messages)
        attempts = CallAttempts(self.retry, rng=self._rng)  # the budget is told below, before the outage check
        while True:
            self.budget.check()
            if self.spend is not None:
                self.spend.check()
            try:
                response = await self._send(call, estimate)
            except ProviderError as error:
                if error.response is not None:  # the server answered and billed it, though it is unusable
                    self.monitor.record_response(error.response)
                self.budget.attempt_failed(error)
                if self.outage is not None and self.outage.holds(error):
                    self.monitor.record_error(error.kind, will_retry=True)
                    continue
                delay = attempts.delay_after(error)
                self.monitor.record_error(error.kind, will_retry=delay is not None)
                if delay is None:
                    raise
                await asyncio.sleep(delay)
                continue
            self.monitor.record_response(response)
            return response

    async def acomplete(self, messages: Messages, **kwargs: Any) -> LLMResponse:
        result: LLMResponse = await self._attempts(lambda: self.inner.acomplete(messages, **kwargs), messages)
        return result

    async def acomplete_structured(self, messages: Messages, schema: Schema, **kwargs: Any) -> StructuredLLMResponse:
        inner: Any = self.inner
        result: StructuredLLMResponse = await self._attempts(
            lambda: inner.acomplete_structured(messages, schema, **kwargs), messages
        )
        return result

    async def aclose(self) -> None:
        await self.inner.aclose()
