"""Adaptive concurrency on a simulated clock (tests/ratelimit_sim.py): deterministic, machine-independent.

The client's CPU is part of the model: `cpu_per_response` > 0 is a busy machine, where responses queue for
the CPU and requests pile up in flight — what made the controller over-drive an admission-limited server
on a slow 2-core machine (1,770 refusals for 800 successes) while it settled on a fast one.
"""

from __future__ import annotations

import pytest

from afterimage_cli.config import RetryConfig
from afterimage_cli.providers.adaptive import AdaptiveConcurrency
from tests.ratelimit_sim import ModelServer, simulate

# The retry settings of test_throughput's admission test: short backoff, so workers come back fast.
QUICK_RETRY = RetryConfig(max_attempts=20, base_delay=0.05, max_delay=0.5)


@pytest.mark.parametrize("cpu_per_response", [0.0, 0.002, 0.004])
def test_settles_under_an_admission_limit(cpu_per_response: float) -> None:
    # 64 workers against a server admitting 100 requests/s (20 ms answers). Not adapting, they are refused
    # 1.7 times per success (2.7 on the busy machine); so was the controller before this test existed.
    server = ModelServer(admit_rps=100, latency=0.02)
    run = simulate(server, successes=800, retry=QUICK_RETRY, cpu_per_response=cpu_per_response)
    assert run.refused_per_success < 0.75
    assert run.ok_per_s_since(run.elapsed / 2) >= 90  # the server's rate (its bucket caps it from above)
    assert run.mean_limit(since=run.elapsed / 2) <= 6  # 100/s × 20 ms = 2 in flight


@pytest.mark.parametrize("cpu_per_response", [0.0, 0.002])
def test_settles_under_the_bench_admission_limit(cpu_per_response: float) -> None:
    # `make bench`'s scenario: 200 requests/s admitted, 50 ms answers, default retries. Not adapting on
    # the busy machine: 0.37 refusals per success; the controller before this test: 0.37 too.
    run = simulate(ModelServer(admit_rps=200, latency=0.05), successes=3000, cpu_per_response=cpu_per_response)
    assert run.refused_per_success < 0.2
    assert run.ok_per_s_since(run.elapsed / 2) >= 190
    assert run.mean_limit(since=run.elapsed / 2) <= 20  # 200/s × 50 ms = 10 in flight


def feed(controller: AdaptiveConcurrency, start: float, *, ok: int, refused: int, in_flight: int) -> float:
    """One epoch of a quarter second from `start`: `ok` successes and `refused` 429s, evenly interleaved.
    (The very first epoch is timed from its first response, which therefore comes at `start`.)"""
    total = ok + refused
    first = start == 0.0
    for i in range(total):
        limited = i * refused // total != (i + 1) * refused // total
        now = start + (i if first else i + 1) * 0.25 / (total - 1 if first else total)
        controller.record(ok=not limited, rate_limited=limited, in_flight=in_flight, now=now)
    return start + 0.25


def test_a_revert_that_wins_nothing_back_is_undone() -> None:
    # A token bucket's first second: 400 successes/s, half refused; then its sustained 100/s. The cut looks
    # as if it cost successes while the share refused stayed: like stray 429s. Undoing it wins nothing back.
    controller = AdaptiveConcurrency(ceiling=1e6)
    t = feed(controller, 0.0, ok=100, refused=100, in_flight=40)
    cut_to = controller.limit
    assert cut_to == 20
    t = feed(controller, t, ok=25, refused=25, in_flight=20)  # the transition, not judged
    t = feed(controller, t, ok=25, refused=25, in_flight=20)
    assert controller.limit == 1e6 and controller.noise == 0.5  # taken for stray 429s: the cut is undone
    t = feed(controller, t, ok=25, refused=55, in_flight=40)
    feed(controller, t, ok=25, refused=55, in_flight=40)
    assert controller.limit < cut_to and controller.noise == 0 and controller.reverts == 0


def test_a_revert_that_wins_successes_back_stands() -> None:
    controller = AdaptiveConcurrency(ceiling=1e6)
    t = feed(controller, 0.0, ok=160, refused=40, in_flight=40)
    assert controller.limit == 32
    t = feed(controller, t, ok=128, refused=32, in_flight=32)
    t = feed(controller, t, ok=128, refused=32, in_flight=32)
    assert controller.limit == 1e6 and controller.noise == pytest.approx(0.2)
    t = feed(controller, t, ok=160, refused=40, in_flight=40)
    feed(controller, t, ok=160, refused=40, in_flight=40)
    assert controller.limit == 1e6 and controller.noise >= 0.19 and controller.reverts == 1


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_stray_429s_do_not_collapse_concurrency(seed: int) -> None:
    # 20 % of requests are refused whatever the load: cutting would only lose throughput.
    def server() -> ModelServer:
        return ModelServer(stray_429=0.2, latency=0.05, retry_after=0.1)

    fixed = simulate(server(), successes=6000, cpu_per_response=0.001, seed=seed, adaptive=False)
    run = simulate(server(), successes=6000, cpu_per_response=0.001, seed=seed)
    assert run.ok_per_s >= 0.85 * fixed.ok_per_s
    assert run.mean_limit(since=run.elapsed / 2) >= 32
    assert run.limiter.adaptive is not None and run.limiter.adaptive.noise >= 0.1  # learned they are noise


def test_stray_429s_at_the_threshold_are_not_ratcheted_down() -> None:
    # 10 % stray 429s sit right at the overload threshold, and epochs of ~32 responses are noisy: cuts
    # must stand out of that noise or be undone, never ratchet the limit down.
    def server() -> ModelServer:
        return ModelServer(stray_429=0.1, latency=0.3)

    fixed = simulate(server(), successes=6000, max_concurrency=32, adaptive=False)
    run = simulate(server(), successes=6000, max_concurrency=32)
    assert run.ok_per_s >= 0.9 * fixed.ok_per_s
    assert run.mean_limit(since=run.elapsed / 2) >= 28


def test_admission_limit_with_stray_429s_on_top() -> None:
    # 200 admitted per second, a tenth of those answered 429 anyway: at best 180 successes/s and 0.11
    # refusals per success.
    server = ModelServer(admit_rps=200, latency=0.05, stray_429=0.1, retry_after=0.1)
    run = simulate(server, successes=3000, cpu_per_response=0.001)
    assert run.refused_per_success < 0.35
    assert run.ok_per_s_since(run.elapsed / 2) >= 170


def test_limit_grows_back_when_the_admission_limit_is_lifted() -> None:
    server = ModelServer(admit_rps=50, latency=0.05, admit_until=10.0)
    run = simulate(server, successes=5000, cpu_per_response=0.001, max_concurrency=64)
    assert run.limiter.cuts >= 1
    assert min(limit for t, limit in run.limits if t < 10) <= 8  # 50/s × 50 ms = 2.5 in flight
    assert run.limiter.limit == 64 and run.ok_per_s_since(run.elapsed - 3) >= 900


def test_same_seed_same_run() -> None:
    def once() -> tuple[int, float, int]:
        run = simulate(ModelServer(admit_rps=100, latency=0.02, stray_429=0.1), successes=300, seed=7)
        return run.refused, run.elapsed, run.limiter.cuts

    assert once() == once()
