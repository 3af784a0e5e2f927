"""Concurrency that finds a provider's rate limit from its 429s, without collapsing on stray ones.

The limit is judged in epochs (at least a quarter second and two limits' worth of responses). A 429 share
above the noise floor cuts the limit to the share admitted (× (1 - share), at most to a quarter). Whether
the cut was right is judged on the epoch after next (the one in between is a transition), by comparing
what changed with what we changed — the requests actually in flight, not the limit:
- successes/s held up, or the 429 share fell: the server admits a fixed rate; the cut stays;
- successes fell with the load while the 429 share stayed where it was: those 429s were not about our
  load (a flaky gateway, another tenant), so the cut is undone and their share becomes the noise floor —
  once the next epoch confirms it, by winning back the successes the cut lost. A token bucket's initial
  burst makes the first epochs look better than the server's sustained rate, which can pass for a cut
  that cost successes: the confirmation catches that, and the floor fades slowly in case it did not;
- a cut the load never reached (requests waiting out their backoff) or a 429 share that rose as the load
  fell (the burst ended) says nothing about stray 429s: the cut stays.
Epochs with no excess 429s grow the limit by about 10 %.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

MIN_EPOCH_RESPONSES = 32
MIN_EPOCH_SECONDS = 0.25
MAX_EPOCH_SECONDS = 5.0
EXCESS = 0.1  # 429 share above the noise floor that counts as overload
QUIET = 0.02  # 429 share above the floor below which the limit may grow
DEEPEST_CUT = 0.25  # a cut keeps at least this share of what was in use
NOISE_FOLLOW = 0.05  # how fast the floor follows calmer epochs down
NOISE_FADE = 0.99  # per epoch: a floor that is not confirmed again fades (half-life ~70 epochs)
BINDING = 0.8  # the share of a new limit in use, on average, that shows it held requests back
NO_CHANGE = 0.1  # a relative change in load smaller than this tells nothing


@dataclass
class _Epoch:
    """What one epoch saw."""

    refused: float  # share of responses that were 429
    ok_per_s: float
    in_use: float  # requests in flight, on average over its responses
    responses: int

    def pooled_share(self, other: _Epoch) -> float:
        """The 429 share of both epochs together."""
        return (self.refused * self.responses + other.refused * other.responses) / (self.responses + other.responses)

    def _sd_of_change(self, before: _Epoch) -> float:
        pooled = self.pooled_share(before)
        return math.sqrt(max(pooled, 0.01) * (1 - pooled) * (1 / self.responses + 1 / before.responses))

    def share_held(self, before: _Epoch) -> bool:
        """Whether the 429 share stayed where it was in `before`: it neither fell by two standard
        deviations of the change (our load mattered) nor rose by one (the server's rate fell)."""
        sd = self._sd_of_change(before)
        return -2 * sd <= self.refused - before.refused <= sd

    def share_rose(self, before: _Epoch) -> bool:
        """Whether the 429 share rose by more than two standard deviations of the change."""
        return self.refused - before.refused > 2 * self._sd_of_change(before)

    def successes_followed_load(self, before: _Epoch, way: float = 0.5) -> bool | None:
        """Whether successes/s moved with the load since `before` (we were the bottleneck) rather than
        holding (the server was): past `way` of the way from `before`'s rate to that rate × the change
        in load. None when the load hardly changed."""
        ratio = self.in_use / before.in_use if before.in_use > 0 else 1.0
        if abs(ratio - 1) < NO_CHANGE:
            return None
        threshold = before.ok_per_s * (1 + way * (ratio - 1))
        return self.ok_per_s < threshold if ratio < 1 else self.ok_per_s > threshold


@dataclass
class _Cut:
    previous_limit: float  # restored if the cut proves wrong
    limit_after: float
    before: _Epoch  # the epoch that called for it

    def bound(self, after: _Epoch) -> bool:
        """Whether the new limit held the load down in `after`. If not, the load fell by itself (requests
        waiting out their backoff) and what happened to successes says nothing about the cut."""
        return after.in_use >= BINDING * max(1, round(self.limit_after))


@dataclass
class _Revert:
    cut: _Cut
    noise_before: float
    during_cut: _Epoch


class AdaptiveConcurrency:
    """The adaptive part of the limiter: `limit` moves between `floor` and `ceiling`."""

    def __init__(self, ceiling: float, floor: float = 1.0, initial: float | None = None) -> None:
        self.ceiling = ceiling
        self.floor = floor
        self.limit = initial if initial is not None else ceiling
        self.noise = 0.0
        self.cuts = 0
        self.reverts = 0  # cuts undone (and not restored since)
        self._pending_cut: _Cut | None = None
        self._pending_revert: _Revert | None = None
        self._settling = False
        self._start: float | None = None
        self._ok = 0
        self._limited = 0
        self._in_flight_sum = 0.0

    def record(self, *, ok: bool, rate_limited: bool, in_flight: float, now: float | None = None) -> None:
        """Count one response (`in_flight` requests, this one included, were in flight); at the end of an
        epoch, decide whether to cut, undo a cut, or grow."""
        if ok:
            self._ok += 1
        elif rate_limited:
            self._limited += 1
        else:
            return
        self._in_flight_sum += in_flight
        now = time.monotonic() if now is None else now
        if self._start is None:
            self._start = now
        elapsed = now - self._start
        responses = self._ok + self._limited
        needed = max(MIN_EPOCH_RESPONSES, int(2 * min(self.limit, in_flight)))
        if elapsed < MIN_EPOCH_SECONDS or (responses < needed and elapsed < MAX_EPOCH_SECONDS):
            return
        self._decide(_Epoch(self._limited / responses, self._ok / elapsed, self._in_flight_sum / responses, responses))
        self._start, self._ok, self._limited, self._in_flight_sum = now, 0, 0, 0.0

    def _decide(self, epoch: _Epoch) -> None:
        settling, self._settling = self._settling, False
        if settling and not (self._pending_cut and epoch.share_rose(self._pending_cut.before)):
            # The epoch after a cut or a revert is a transition (answers to requests sent under the old
            # limit, retries coming back), so the one after it is judged. Unless the 429 share rose as
            # the load fell: then the cut was too small, whatever else holds.
            return
        cut, self._pending_cut = self._pending_cut, None
        revert, self._pending_revert = self._pending_revert, None
        if revert is not None:
            self._confirm(revert, epoch)
        elif cut is not None and self._judge(cut, epoch):
            return
        self._adapt(epoch)

    def _confirm(self, revert: _Revert, epoch: _Epoch) -> None:
        """Keep an undone cut undone only if undoing it won back successes."""
        if not epoch.successes_followed_load(revert.during_cut, way=0.25):
            # No more successes (or no load came back to win them): the cut was right after all.
            self.limit, self.noise = revert.cut.limit_after, revert.noise_before
            self.reverts -= 1

    def _judge(self, cut: _Cut, epoch: _Epoch) -> bool:
        """Undo the cut, or split its step, if the epoch after shows it was wrong; True if it did."""
        if not cut.bound(epoch) or not epoch.successes_followed_load(cut.before):
            return False
        if epoch.share_held(cut.before):
            # Fewer successes and refused as often as before: those 429s were not about our load.
            self._pending_revert = _Revert(cut, self.noise, epoch)
            self.limit = cut.previous_limit
            self.noise = max(self.noise, epoch.pooled_share(cut.before))
            self.reverts += 1
            self._settling = True
            return True
        if epoch.refused < cut.before.refused:
            # The 429s stopped but so did some successes: the cut went below capacity; split the step.
            self.limit = (min(cut.before.in_use, cut.previous_limit) + self.limit) / 2
            return True
        return False  # refused more often with less load: the server's burst ended; the cut stands

    def _adapt(self, epoch: _Epoch) -> None:
        """Cut on an excess of 429s over the noise floor, grow when there is none."""
        self.noise *= NOISE_FADE
        if epoch.refused < self.noise:
            # The floor follows calmer spells down, so a flaky spell long past does not hide a real
            # overload later.
            self.noise += NOISE_FOLLOW * (epoch.refused - self.noise)
        # An excess must stand out of the sampling noise of a small epoch (two standard deviations).
        spread = 2 * math.sqrt(max(self.noise, 0.01) * (1 - self.noise) / epoch.responses)
        if epoch.refused > self.noise + max(EXCESS, spread):
            # A refused request holds its slot as long as an answer would (ratelimit.py), so the rate we
            # offer follows the requests in flight, and at offered rate R a server admitting K refuses
            # 1 - K/R: scaling what was in use by the admitted share aims straight at K.
            in_use = min(self.limit, max(epoch.in_use, 1.0))
            previous = self.limit
            self.limit = max(self.floor, in_use * max(DEEPEST_CUT, 1 - epoch.refused))
            self._pending_cut = _Cut(previous, self.limit, epoch)
            self.cuts += 1
            self._settling = True
        elif epoch.refused <= self.noise + max(QUIET, spread / 2) and self.limit < self.ceiling:
            self.limit = min(self.ceiling, self.limit + max(1.0, self.limit * 0.1))
