"""Outages: a server that stops answering mid-run is waited out (pause, probe, resume), not fatal at once.

A gateway restart or a crashed-and-restarted vLLM fails every call in flight for a few seconds. Counting
those as ordinary failures ends an overnight run; this gate instead pauses the calls to that server,
lets one call at a time probe it with backoff, and resumes everyone at the first answer. Only a server
that stays silent for `error_budget.max_outage_s` stops the run.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

from ..errors import ProviderError, RunAborted

# Failures that say the server is not there: refused or dropped connections, timeouts, 5xx answers.
# A 429 is back-pressure (the server is up) and a 4xx or an unusable answer is about one request.
OUTAGE_KINDS = frozenset({"connection", "timeout", "server"})
# Probes start at retry.base_delay (at least this) and double up to PROBE_MAX_DELAY: one request every few
# seconds costs nothing, and a restarted server is back in use within seconds of answering again.
PROBE_MIN_DELAY = 0.1
PROBE_MAX_DELAY = 5.0

Clock = Callable[[], float]
Sleep = Callable[[float], Awaitable[object]]


class OutageGate:
    """The health of one server, shared by every call to it.

    `threshold` consecutive failed attempts (of OUTAGE_KINDS, across all calls in flight) declare the
    server down, once it has answered at least once in this run; a server that never answered is a wrong
    `api_base` or a server not started, and stops the run at once. While down, `admit` holds every call
    and lets one through at a time as the probe; any answer ends the outage. The clock and sleep are
    injectable so the timing is testable on a simulated clock.
    """

    def __init__(
        self,
        server: str,
        *,
        threshold: int,
        max_outage_s: float,
        base_delay: float,
        stop: Callable[[str], None],
        clock: Clock = time.monotonic,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        self.server = server
        self.threshold = threshold
        self.max_outage_s = max_outage_s
        self.base_delay = max(base_delay, PROBE_MIN_DELAY)
        self._stop = stop
        self.clock = clock
        self.sleep = sleep
        self.answered_once = False
        self.consecutive = 0
        self.failing_since: float | None = None  # the first failure of the current streak
        self.down = False
        self.probing = False
        self.probes = 0
        self.outages = 0
        self.last_error = ""
        self.reason: str | None = None
        self._waiters: list[asyncio.Future[None]] = []

    # --- what attempts report -----------------------------------------------------------------

    def answered(self) -> None:
        """The server answered (a result, or an error about the request itself): it is up."""
        self.answered_once = True
        self.consecutive = 0
        self.failing_since = None
        if self.down:
            self.down = False
            self._wake()

    def attempt_failed(self, error: ProviderError) -> None:
        """Sort a failed attempt: a sign of an outage, back-pressure (ignored), or an answer."""
        if error.kind == "rate_limit":
            return
        if error.kind not in OUTAGE_KINDS:
            self.answered()
            return
        self.last_error = str(error)
        self.consecutive += 1
        if self.failing_since is None:
            self.failing_since = self.clock()
        if self.down or self.consecutive < self.threshold:
            return
        if not self.answered_once:
            self.halt(f"{self.server} has not answered any of {self.consecutive} attempts (last: {error})")
        self.down = True
        self.probes = 0
        self.outages += 1

    def holds(self, error: ProviderError) -> bool:
        """Whether a call that failed with `error` waits for the server instead of using up an attempt."""
        return self.down and error.kind in OUTAGE_KINDS

    # --- what calls wait on -------------------------------------------------------------------

    async def admit(self) -> bool:
        """Wait until a call may go out; True when it goes as the outage's probe (report `probe_ended`)."""
        while True:
            self.check()
            if not self.down:
                return False
            if not self.probing:
                self.probing = True
                try:
                    await self.sleep(min(self.probe_delay(), self.remaining()))
                except BaseException:
                    self.probe_ended()
                    raise
                if self.down and self.remaining() <= 0:
                    self.probe_ended()
                    self.halt(f"{self.server} has not answered for {self.max_outage_s:g} s: {self.last_error}")
                if not self.down:  # a call in flight got an answer while this one waited
                    self.probe_ended()
                    return False
                self.probes += 1
                return True
            await self._changed()

    def probe_ended(self) -> None:
        """The probe's attempt is over (whatever its outcome): the next one may go."""
        self.probing = False
        self._wake()

    def probe_delay(self) -> float:
        """The wait before the next probe: doubling from base_delay, at most PROBE_MAX_DELAY."""
        return min(PROBE_MAX_DELAY, self.base_delay * 2**self.probes)

    def remaining(self) -> float:
        """Seconds left before a still-silent server stops the run."""
        if self.failing_since is None:
            return self.max_outage_s
        return self.failing_since + self.max_outage_s - self.clock()

    def check(self) -> None:
        if self.reason is not None:
            raise RunAborted(f"stopping: {self.reason}")

    def halt(self, reason: str) -> None:
        """Stop the run: every waiting call wakes to raise RunAborted, and so does every new one."""
        if self.reason is None:
            self.reason = reason
            self._stop(reason)
        self._wake()
        self.check()

    async def _changed(self) -> None:
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(future)
        try:
            await future
        finally:
            if future in self._waiters:
                self._waiters.remove(future)

    def _wake(self) -> None:
        waiters, self._waiters = self._waiters, []
        for future in waiters:
            if not future.done():
                future.set_result(None)
