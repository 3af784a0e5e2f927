"""The Ray executor's global rate limits without Ray: the coordinator's grants, and a worker's stand-in
limiter batching its requests and releases (the coordinator is a plain class; its handle is faked here)."""

from __future__ import annotations

import asyncio
from typing import Any

from afterimage_cli.engine.ray_limits import LimitsCoordinator, SharedLimiter


def test_a_grant_admits_several_up_to_the_limit() -> None:
    coordinator = LimitsCoordinator({"m": {"max_concurrency": 3, "adaptive": False}})
    admitted, _ = asyncio.run(coordinator.grant("m", 5, 0, "w0.0"))
    assert admitted == 3
    assert coordinator.limiters["m"].in_flight == 3


def test_a_dead_workers_permits_are_freed() -> None:
    """Calls in flight on a worker that died never end: forgetting it frees their slots of max_concurrency."""
    coordinator = LimitsCoordinator({"m": {"max_concurrency": 2, "adaptive": False}})

    async def scenario() -> int:
        await coordinator.grant("m", 2, 0, "w0.0")
        coordinator.forget("w0.0")
        admitted, _ = await asyncio.wait_for(coordinator.grant("m", 2, 0, "w1.0"), timeout=5)
        return admitted

    assert asyncio.run(scenario()) == 2


def test_forget_leaves_what_was_released() -> None:
    coordinator = LimitsCoordinator({"m": {"max_concurrency": 4, "adaptive": False}})
    asyncio.run(coordinator.grant("m", 3, 0, "w0.0"))
    coordinator.release("m", [(True, False, None, 0, None)] * 2, "w0.0")
    coordinator.forget("w0.0")
    assert coordinator.limiters["m"].in_flight == 0


class _Method:
    """A Ray actor method's `.remote(...)` on a local object: records calls, returns an awaitable."""

    def __init__(self, fn: Any, calls: list[tuple[Any, ...]]) -> None:
        self.fn = fn
        self.calls = calls

    def remote(self, *args: Any) -> Any:
        self.calls.append(args)
        result = self.fn(*args)
        if asyncio.iscoroutine(result):
            return asyncio.ensure_future(result)
        future = asyncio.get_running_loop().create_future()
        future.set_result(result)
        return future


class _Handle:
    def __init__(self, coordinator: LimitsCoordinator) -> None:
        self.grants: list[tuple[Any, ...]] = []
        self.releases: list[tuple[Any, ...]] = []
        self.grant = _Method(coordinator.grant, self.grants)
        self.release = _Method(coordinator.release, self.releases)
        self.give_back = _Method(coordinator.give_back, [])


def test_calls_waiting_together_share_one_grant_and_one_release() -> None:
    coordinator = LimitsCoordinator({"m": {"max_concurrency": 100, "adaptive": False}})
    handle = _Handle(coordinator)

    async def scenario() -> None:
        limiter = SharedLimiter(handle, "m", "w0.0")
        starts = await asyncio.gather(*(limiter.acquire(10) for _ in range(10)))
        for started in starts:
            limiter.release(ok=True, started=started)
        await asyncio.sleep(0.01)

    asyncio.run(scenario())
    assert [args[1] for args in handle.grants] == [10]  # one request for all ten
    assert [len(args[1]) for args in handle.releases] == [10]  # one release carrying all ten endings
    assert coordinator.limiters["m"].in_flight == 0


def test_the_limit_is_one_for_all_workers() -> None:
    """Two workers' stand-ins together never hold more than the coordinator's max_concurrency."""
    coordinator = LimitsCoordinator({"m": {"max_concurrency": 4, "adaptive": False}})
    handle = _Handle(coordinator)
    held = 0
    most = 0

    async def call(limiter: SharedLimiter) -> None:
        nonlocal held, most
        started = await limiter.acquire(0)
        held += 1
        most = max(most, held)
        await asyncio.sleep(0.005)
        held -= 1
        limiter.release(ok=True, started=started)

    async def scenario() -> None:
        a, b = SharedLimiter(handle, "m", "w0.0"), SharedLimiter(handle, "m", "w1.0")
        await asyncio.gather(*(call(a if i % 2 else b) for i in range(40)))

    asyncio.run(scenario())
    assert most == 4
