"""Concurrency that finds a provider's rate limit from its 429s, without collapsing on stray ones.

The limit is judged in epochs of responses. A 429 rate f above the noise floor cuts the limit by the
share admitted (× (1 - f), at most halving).
The next epoch tells whether the cut was right: if successes per second held up, the server was
admitting a fixed rate and the cut only removed wasted requests, so it stays; if successes fell with the
limit, the 429s were not caused by our load (a flaky gateway, another tenant), so the cut is undone and
their rate becomes the noise floor. Epochs with no excess 429s grow the limit by about 10 %.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

MIN_EPOCH_RESPONSES = 16
MIN_EPOCH_SECONDS = 0.25
MAX_EPOCH_SECONDS = 5.0
EXCESS = 0.1  # 429 rate above the noise floor that counts as overload
QUIET = 0.02  # 429 rate below which the limit may grow
NOISE_FOLLOW = 0.05


@dataclass
class _Cut:
    previous_limit: float  # restored if the cut proves wrong
    in_use: float  # what was in flight when the cut was made
    limit_after: float
    successes_per_s: float
    limited_rate: float

    def kept_threshold(self) -> float:
        """Successes/s after the cut above which it was right: nearer 'unchanged' (the server was the
        bottleneck) than 'fell with the limit' (we were)."""
        return self.successes_per_s * (1 + self.limit_after / self.in_use) / 2


class AdaptiveConcurrency:
    """The adaptive part of the limiter: `limit` moves between `floor` and `ceiling`."""

    def __init__(self, ceiling: float, floor: float = 1.0, initial: float | None = None) -> None:
        self.ceiling = ceiling
        self.floor = floor
        self.limit = initial if initial is not None else ceiling
        self.noise = 0.0
        self.cuts = 0
        self.reverts = 0
        self._pending_cut: _Cut | None = None
        self._start: float | None = None
        self._ok = 0
        self._limited = 0

    def record(self, *, ok: bool, rate_limited: bool, in_flight: int, now: float | None = None) -> None:
        """Count one response; at the end of an epoch, decide whether to cut, undo a cut, or grow."""
        if ok:
            self._ok += 1
        elif rate_limited:
            self._limited += 1
        else:
            return
        now = time.monotonic() if now is None else now
        if self._start is None:
            self._start = now
        elapsed = now - self._start
        responses = self._ok + self._limited
        needed = max(MIN_EPOCH_RESPONSES, int(min(self.limit, in_flight + 1)))
        if elapsed < MIN_EPOCH_SECONDS or (responses < needed and elapsed < MAX_EPOCH_SECONDS):
            return
        self._decide(self._limited / responses, self._ok / elapsed, in_flight, responses)
        self._start, self._ok, self._limited = now, 0, 0

    def _decide(self, limited_rate: float, successes_per_s: float, in_flight: int, responses: int) -> None:
        cut, self._pending_cut = self._pending_cut, None
        if cut is not None and successes_per_s < cut.kept_threshold():
            if limited_rate >= cut.limited_rate / 2:
                # Still refused about as often, and fewer successes: those 429s were not about our load.
                self.limit = cut.previous_limit
                self.noise = max(self.noise, limited_rate)
                self.reverts += 1
            else:
                # The 429s stopped but so did some successes: the cut went below capacity; split the step.
                self.limit = (cut.in_use + self.limit) / 2
            return
        if limited_rate < self.noise:
            # The floor only rises on proof (a cut that cost throughput) and follows calmer spells down,
            # so a flaky spell long past does not hide a real overload later.
            self.noise += NOISE_FOLLOW * (limited_rate - self.noise)
        # An excess must stand out of the sampling noise of a small epoch (two standard deviations).
        spread = 2 * math.sqrt(max(self.noise, 0.01) * (1 - self.noise) / responses)
        if limited_rate > self.noise + max(EXCESS, spread):
            # At offered rate R a server admitting K refuses 1 - K/R: scaling by the admitted share aims
            # straight at K; at most halving per epoch keeps a noisy epoch from overshooting.
            in_use = min(self.limit, float(max(in_flight, 1)))
            previous = self.limit
            self.limit = max(self.floor, in_use * max(0.5, 1 - limited_rate))
            self._pending_cut = _Cut(previous, in_use, self.limit, successes_per_s, limited_rate)
            self.cuts += 1
        elif limited_rate <= self.noise + QUIET and self.limit < self.ceiling:
            self.limit = min(self.ceiling, self.limit + max(1.0, self.limit * 0.1))
