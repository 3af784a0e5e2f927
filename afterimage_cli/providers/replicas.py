"""Several endpoints serving one model: replicas of a server (a list `api_base`) or deployments of a hosted
model (`deployments:`), behind one provider.

A call goes to the healthy endpoint with the fewest requests in flight (ties: round robin) whose own limits
(max_concurrency, rpm, tpm) admit it now. An endpoint that fails the way a dead server does (refused or
dropped connections, timeouts, 5xx) `FAILURES_TO_OUT` times in a row is taken out; once its probe time comes
(PROBE_FIRST doubling up to PROBE_MAX), the next call goes to it as the probe, and an answer puts it back. A
429 cools an endpoint down (Retry-After, else COOLDOWN) so the others are preferred; a rejected key takes a
deployment out for good. A call that fails on one endpoint that way is sent at once to another it has not
tried (litellm's Router does the same: retry on another deployment, cool the failing one down); only when
every endpoint has failed it, or all are out, does the error reach the retry layer above, so the run's
outage rules (engine/outage.py) apply to the set as a whole. While every endpoint is out, calls go to them
anyway (the outage gate above paces them) and the error names each endpoint.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import Counter, deque
from collections.abc import Awaitable, Callable
from typing import Any

from ..errors import ProviderError
from .base import BaseProvider, LLMProvider, LLMResponse, Messages, StructuredLLMResponse
from .logging import warn
from .ratelimit import RateLimiter, estimate_tokens
from .structured import Schema

# Failures that say the endpoint is not there (engine/outage.py's OUTAGE_KINDS).
DOWN_KINDS = frozenset({"connection", "timeout", "server"})
FAILURES_TO_OUT = 3  # consecutive DOWN_KINDS failures that take an endpoint out
PROBE_FIRST = 0.5  # seconds after an endpoint is taken out before the first probe (the run's retry.base_delay)
PROBE_MIN = 0.05
PROBE_MAX = 5.0  # probes back off by doubling up to this: a restarted server is back within seconds
COOLDOWN = 5.0  # seconds a 429 (without Retry-After) makes an endpoint the last choice; litellm's default
LATENCIES_KEPT = 4096  # latest answer times per endpoint, for p50/p95

Clock = Callable[[], float]

# Why batch mode takes one endpoint: a batch is a job one endpoint owns for up to a day, and a resumed run
# polls it there; a replica list is operational (it may change between sessions), so a batch could be lost.
SEVERAL_ENDPOINTS_IN_BATCH_MODE = (
    "batch mode sends each batch to one endpoint and polls it there until it ends, even across resumes; a "
    "model block with several endpoints (a list api_base, or deployments) cannot run in batch mode: give it "
    "one api_base, or run online (generation.mode: online)"
)


class Replica:
    """One endpoint of a set: its transport, its own limits, its health and its counters."""

    def __init__(self, name: str, transport: LLMProvider, limiter: RateLimiter | None = None) -> None:
        self.name = name
        self.transport = transport
        self.limiter = limiter or RateLimiter(adaptive=False)
        self.consecutive = 0  # DOWN_KINDS failures in a row
        self.out = False
        self.disabled = False  # its key was rejected: out for the rest of the run
        self.probing = False
        self.probes = 0  # probes since it was taken out (the backoff's exponent)
        self.retry_at = 0.0  # when it may be probed
        self.cooling_until = 0.0  # a 429 makes it the last choice until then
        self.times_out = 0
        self.calls = 0
        self.answered = 0
        self.errors: Counter[str] = Counter()
        self.latencies: deque[float] = deque(maxlen=LATENCIES_KEPT)
        self.last_error = ""

    @property
    def in_flight(self) -> int:
        return self.limiter.in_flight

    @property
    def state(self) -> str:
        return "disabled" if self.disabled else "out" if self.out else "up"

    def percentile(self, share: float) -> float | None:
        """The answer time (s) below which `share` of its latest answers came; None before any."""
        if not self.latencies:
            return None
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, math.ceil(share * len(ordered)) - 1)]

    def summary(self) -> dict[str, Any]:
        p50, p95 = self.percentile(0.5), self.percentile(0.95)
        return {
            "endpoint": self.name,
            "state": self.state,
            "calls": self.calls,
            "errors": sum(self.errors.values()),
            "errors_by_kind": dict(self.errors),
            "p50_ms": None if p50 is None else round(p50 * 1000, 1),
            "p95_ms": None if p95 is None else round(p95 * 1000, 1),
            "times_out": self.times_out,
        }


def merge_summaries(reports: list[dict[str, list[dict[str, Any]]]]) -> dict[str, list[dict[str, Any]]]:
    """Several processes' `summary()` of the same endpoints (Ray workers each route on their own) as one:
    counts added; up when any process has it up; p50 the calls-weighted mean and p95 the highest of theirs
    (the exact percentiles would need every answer time)."""
    merged: dict[str, dict[str, dict[str, Any]]] = {}
    for report in reports:
        for model, entries in report.items():
            for entry in entries:
                into = merged.setdefault(model, {}).setdefault(entry["endpoint"], _empty(entry["endpoint"]))
                into["state"] = "up" if "up" in (into["state"], entry["state"]) else entry["state"]
                for key in ("calls", "errors", "times_out"):
                    into[key] += entry[key]
                for kind, count in entry["errors_by_kind"].items():
                    into["errors_by_kind"][kind] = into["errors_by_kind"].get(kind, 0) + count
                if entry["p50_ms"] is not None:
                    into["_weighted"] += entry["p50_ms"] * entry["calls"]
                    into["_timed"] += entry["calls"]
                    into["p95_ms"] = max(into["p95_ms"] or 0.0, entry["p95_ms"] or 0.0)
    out: dict[str, list[dict[str, Any]]] = {}
    for model, endpoints in merged.items():
        out[model] = []
        for entry in endpoints.values():
            weighted, timed = entry.pop("_weighted"), entry.pop("_timed")
            entry["p50_ms"] = round(weighted / timed, 1) if timed else None
            out[model].append(entry)
    return out


def _empty(endpoint: str) -> dict[str, Any]:
    return {
        "endpoint": endpoint,
        "state": "",
        "calls": 0,
        "errors": 0,
        "errors_by_kind": {},
        "p50_ms": None,
        "p95_ms": None,
        "times_out": 0,
        "_weighted": 0.0,
        "_timed": 0,
    }


class ReplicaSet(BaseProvider):
    """One model served by several endpoints (see the module docstring for the routing and health rules)."""

    def __init__(
        self,
        model: str,
        replicas: list[Replica],
        *,
        completion_allowance: int = 256,
        probe_first: float = PROBE_FIRST,
        clock: Clock = time.monotonic,
    ) -> None:
        if not replicas:
            raise ValueError("ReplicaSet needs at least one endpoint")
        self.model_name = model
        self.replicas = replicas
        self.completion_allowance = completion_allowance
        self.probe_first = max(probe_first, PROBE_MIN)
        self.clock = clock
        # Told of each failed attempt the set absorbs by sending the call elsewhere (the monitor's error count).
        self.on_failover: Callable[[str], None] | None = None
        self._next = 0
        self._changed: asyncio.Event | None = None

    # --- what the stack above reads --------------------------------------------------------

    @property
    def config_path(self) -> str:
        return str(getattr(self.replicas[0].transport, "config_path", ""))

    @config_path.setter
    def config_path(self, where: str) -> None:
        for replica in self.replicas:
            if hasattr(replica.transport, "config_path"):
                replica.transport.config_path = where  # type: ignore[attr-defined]

    @property
    def names(self) -> list[str]:
        return [replica.name for replica in self.replicas]

    def summary(self) -> list[dict[str, Any]]:
        """Calls, errors, p50/p95 answer time and state of each endpoint."""
        return [replica.summary() for replica in self.replicas]

    def status_text(self) -> str:
        """'2/3 up' for the progress line."""
        up = sum(replica.state == "up" for replica in self.replicas)
        return f"{up}/{len(self.replicas)} up"

    # --- health ------------------------------------------------------------------------------

    def take_out(self, replica: Replica, error: ProviderError) -> None:
        """Take an endpoint out until a probe gets an answer (also when it fails the run's first question)."""
        replica.last_error = str(error)
        if not replica.out:
            replica.out = True
            replica.probes = 0
            replica.times_out += 1
            if len(self.replicas) > 1:
                warn(f"{self.model_name}: {replica.name} is out ({error}); the others go on", once=False)
        replica.retry_at = self.clock() + self.probe_delay(replica)
        replica.probes += 1

    def probe_delay(self, replica: Replica) -> float:
        """The wait before an out endpoint's next probe: doubling from probe_first, at most PROBE_MAX."""
        return min(PROBE_MAX, self.probe_first * 2**replica.probes)

    def _put_back(self, replica: Replica) -> None:
        replica.consecutive = 0
        if replica.out:
            replica.out = False
            replica.probes = 0
            if len(self.replicas) > 1:
                warn(f"{self.model_name}: {replica.name} answers again; back in use", once=False)

    def _all_out(self) -> bool:
        return all(replica.out or replica.disabled for replica in self.replicas)

    # --- routing -----------------------------------------------------------------------------

    def _pick(self, tried: set[int], estimate: int) -> tuple[Replica | None, float]:
        """An endpoint admitted now (its limiter's slot taken), or None and the seconds to wait (math.inf:
        until one frees; 0: none is left for this call)."""
        now = self.clock()
        fresh = [(i, r) for i, r in enumerate(self.replicas) if i not in tried and not r.disabled]
        due = [(i, r) for i, r in fresh if r.out and not r.probing and r.retry_at <= now]
        usable = [(i, r) for i, r in fresh if not r.out]
        if not usable and not due and self._all_out():
            # Every endpoint is out: the call tries each anyway (earliest probe first), so the run's outage
            # gate sees the set fail, and paces the calls.
            usable = sorted(fresh, key=lambda pair: pair[1].retry_at)
        n = len(self.replicas)
        ordered = due + sorted(
            usable, key=lambda pair: (pair[1].cooling_until > now, pair[1].in_flight, (pair[0] - self._next) % n)
        )
        wait = 0.0 if not ordered else math.inf
        for index, replica in ordered:
            delay = replica.limiter.try_acquire(estimate)
            if delay <= 0:
                if replica.out:
                    replica.probing = True
                self._next = index + 1
                return replica, 0.0
            wait = min(wait, delay)
        return None, wait

    async def _acquire(self, tried: set[int], estimate: int) -> Replica | None:
        while True:
            replica, wait = self._pick(tried, estimate)
            if replica is not None or wait <= 0:
                return replica
            event = self._event()
            try:
                await asyncio.wait_for(event.wait(), timeout=None if math.isinf(wait) else wait)
            except TimeoutError:
                pass

    def _event(self) -> asyncio.Event:
        if self._changed is None:
            self._changed = asyncio.Event()
        return self._changed

    def _wake(self) -> None:
        self._event().set()
        self._changed = asyncio.Event()

    # --- one call ------------------------------------------------------------------------------

    async def _call(self, send: Callable[[LLMProvider], Awaitable[Any]], messages: Messages) -> Any:
        estimate = estimate_tokens(messages, self.completion_allowance)
        tried: set[int] = set()
        failures: list[tuple[Replica, ProviderError]] = []
        while True:
            replica = await self._acquire(tried, estimate)
            if replica is None:
                raise self.all_failed(failures)
            if failures and self.on_failover is not None:  # the failed attempt is absorbed: count it here
                self.on_failover(failures[-1][1].kind)
            tried.add(self.replicas.index(replica))
            started = self.clock()
            replica.calls += 1
            try:
                response = await send(replica.transport)
            except ProviderError as error:
                self._failed(replica, error, started, estimate)
                if len(self.replicas) > 1:
                    error.headers = None  # its own, as an answer's are
                if not self._moves_on(error):
                    raise
                failures.append((replica, error))
                continue
            except BaseException:
                replica.probing = False
                replica.limiter.release(ok=False, started=started)
                self._wake()
                raise
            self._answered(replica, response, started, estimate)
            if len(self.replicas) > 1:
                # An endpoint's rate-limit headers are its own (its limiter read them): the set's limiter above
                # must not pause every endpoint for one that is used up.
                response.headers = None
            return response

    def _moves_on(self, error: ProviderError) -> bool:
        """Whether another endpoint may answer what this one failed: it is down, throttled, or refused
        this deployment's key."""
        return error.kind in DOWN_KINDS or error.kind in ("rate_limit", "auth")

    def _answered(self, replica: Replica, response: LLMResponse, started: float, estimate: int) -> None:
        replica.probing = False
        replica.answered += 1
        replica.latencies.append(self.clock() - started)
        replica.limiter.release(
            ok=True, headers=response.headers, token_correction=response.total_token_count - estimate, started=started
        )
        self._put_back(replica)
        self._wake()

    def _failed(self, replica: Replica, error: ProviderError, started: float, estimate: int) -> None:
        replica.errors[error.kind] += 1
        probe, replica.probing = replica.probing, False
        paid = error.response.total_token_count - estimate if error.response is not None else 0
        limited = error.kind == "rate_limit"
        replica.limiter.release(
            ok=False, rate_limited=limited, headers=error.headers, token_correction=paid, started=started
        )
        if error.kind in DOWN_KINDS:
            replica.consecutive += 1
            if probe or replica.out or replica.consecutive >= FAILURES_TO_OUT:
                self.take_out(replica, error)
        elif limited:
            replica.cooling_until = self.clock() + (error.retry_after or COOLDOWN)
            self._put_back(replica)  # a 429 is an answer: the endpoint is up
        elif error.kind == "auth" and not error.retryable and len(self.replicas) > 1:
            replica.disabled = True
            replica.last_error = str(error)
            warn(f"{self.model_name}: {replica.name} refused its key ({error}); it is no longer used", once=False)
        else:
            self._put_back(replica)  # an answer about this request: the endpoint is up
        self._wake()

    def all_failed(self, failures: list[tuple[Replica, ProviderError]]) -> ProviderError:
        """The error of a call every endpoint failed: the only one's as it was, else one naming each."""
        if not failures:
            disabled = ", ".join(r.name for r in self.replicas if r.disabled)
            return ProviderError(
                f"{self.model_name}: every endpoint refused its key ({disabled})", retryable=False, kind="auth"
            )
        if len(failures) == 1:
            return failures[0][1]
        errors = [error for _, error in failures]
        named = "; ".join(f"{replica.name}: {error}" for replica, error in failures)
        if all(error.kind == "rate_limit" for error in errors):
            waits = [e.retry_after for e in errors if e.retry_after]
            return ProviderError(
                f"{self.model_name}: every endpoint is rate limited ({named})",
                retryable=True,
                status_code=429,
                retry_after=min(waits) if waits else None,
                kind="rate_limit",
            )
        down = [error for error in errors if error.kind in DOWN_KINDS]
        last = down[-1] if down else errors[-1]
        return ProviderError(
            f"{self.model_name}: no endpoint answered ({named})",
            retryable=any(error.retryable for error in errors),
            status_code=last.status_code,
            kind=last.kind,
        )

    # --- the provider interface ------------------------------------------------------------------

    async def acomplete(self, messages: Messages, **kwargs: Any) -> LLMResponse:
        result: LLMResponse = await self._call(lambda t: t.acomplete(messages, **kwargs), messages)
        return result

    async def acomplete_structured(self, messages: Messages, schema: Schema, **kwargs: Any) -> StructuredLLMResponse:
        result: StructuredLLMResponse = await self._call(
            lambda t: t.acomplete_structured(messages, schema, **kwargs), messages
        )
        return result

    async def aclose(self) -> None:
        for replica in self.replicas:
            await replica.transport.aclose()
