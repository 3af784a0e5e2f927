"""`--executor ray`: the same run, its items made by K Ray workers. This process (the driver) plans and
schedules items exactly as a local run does (engine.scheduler's ItemLoop, the same (seed, item) plans) and
is the single writer: each row comes back to it, is written once by id and recorded in the ledger. Only
`run_item` goes elsewhere — to the least busy live worker, and to another one if that worker dies — so
resume, budgets and exactly-N are the local engine's own."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..config import ExecutionConfig
from ..errors import BudgetExceeded, ItemRejected, ProviderError, RunAborted, UsageError
from ..monitor import GenerationMonitor, Usage
from ..storage.base import BaseStorage, Row
from .ledger import FilterBudget
from .ray_limits import LimitsCoordinator, shared_limiters
from .ray_worker import ItemWorker, WorkerBrief, add_counts, worker_env
from .retry import ErrorBudget
from .scheduler import RunResult, run_items
from .spend import SpendLimit

if TYPE_CHECKING:
    from ..pipeline import Run

INSTALL_HINT = "--executor ray needs Ray: pip install 'afterimage[ray]' (or pip install 'ray[default]==2.60.0')"
MAX_RESTARTS = 3  # times a dead worker is replaced before its place is given up
CLOSE_TIMEOUT = 10.0  # seconds the workers get to close their runs at the end


def require_ray() -> Any:
    """The ray module, or a UsageError saying how to install it."""
    try:
        import ray
    except ImportError:
        raise UsageError(INSTALL_HINT) from None
    return ray


@contextmanager
def ray_session(execution: ExecutionConfig, env: dict[str, str]) -> Iterator[Any]:
    """Connected to the cluster at `execution.address` (or $RAY_ADDRESS); without one, a local Ray started
    for the run and stopped after it. The workers get `env` (the keys the run needs) whatever their node."""
    ray = require_ray()
    address = execution.address or os.environ.get("RAY_ADDRESS") or None
    options: dict[str, Any] = {"log_to_driver": False, "logging_level": "ERROR", "runtime_env": {"env_vars": env}}
    if address is None:
        os.environ.setdefault("RAY_AUTH_MODE", "disabled")  # a throwaway local cluster needs no token in ~/.ray
        options["num_cpus"] = max(execution.workers, os.cpu_count() or 1)
        options["include_dashboard"] = False
    try:
        ray.init(address=address, **options)
    except (ConnectionError, RuntimeError, ValueError) as exc:
        where = f"the Ray cluster at {address}" if address else "a local Ray"
        raise RunAborted(f"could not start or reach {where} (execution.address, RAY_ADDRESS): {exc}") from None
    try:
        yield ray
    finally:
        ray.shutdown()


class WorkerLost(Exception):
    """The worker holding an item died before answering."""


class Lane:
    """One worker and the items it holds. Items handed to it in one event-loop tick go in one call (`start`),
    and finished ones come back in batches (`results`, one call waiting at a time), so a busy run pays a
    round trip per batch, not per item."""

    def __init__(self, handle: Any, name: str, lost: tuple[type[BaseException], ...]) -> None:
        self.handle = handle
        self.name = name
        self.lost = lost
        self.pending: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self.queued: list[tuple[int, int]] = []
        self.dead = False
        self._poller: asyncio.Task[None] | None = None

    def submit(self, index: int, attempt: int) -> asyncio.Future[dict[str, Any]]:
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self.pending[index] = future
        if not self.queued:
            asyncio.get_running_loop().call_soon(self._send)
        self.queued.append((index, attempt))
        if self._poller is None:
            self._poller = asyncio.ensure_future(self._poll())
        return future

    def _send(self) -> None:
        items, self.queued = self.queued, []
        if items and not self.dead:
            self.handle.start.remote(items)  # a dead worker shows in `results`, which fails every item it held

    async def _poll(self) -> None:
        try:
            while self.pending:
                for outcome in await self.handle.results.remote():
                    future = self.pending.pop(outcome["index"], None)
                    if future is not None and not future.done():
                        future.set_result(outcome)
        except self.lost:
            self._fail(WorkerLost())
        except Exception as exc:  # a bug in a worker: each item it held raises it
            self._fail(exc)
        finally:
            self._poller = None

    def _fail(self, exc: BaseException) -> None:
        self.dead = isinstance(exc, WorkerLost)
        pending, self.pending = self.pending, {}
        for future in pending.values():
            if not future.done():
                future.set_exception(exc)


class WorkerPool:
    """K worker actors; an item goes to the least busy live one, and again elsewhere if that one dies. A dead
    worker is replaced by a new one (`spawn`), which builds its run on its first item."""

    def __init__(self, ray: Any, spawn: Callable[[str], Any], workers: int, coordinator: Any, say: Any = None) -> None:
        self.ray = ray
        self.say = say
        self.spawn = spawn
        self.coordinator = coordinator
        self.lost = (ray.exceptions.RayActorError, ray.exceptions.ActorUnavailableError)
        self.lanes = [Lane(spawn(f"w{w}.0"), f"w{w}.0", self.lost) for w in range(workers)]
        self.deaths = [0] * workers
        self.handed_over = 0  # items a dying worker left, run again by another

    def _pick(self, avoid: int | None) -> int:
        alive = [w for w, lane in enumerate(self.lanes) if not lane.dead]
        if not alive:
            raise RunAborted(f"every Ray worker died more than {MAX_RESTARTS} times; the rows written are kept")
        others = [w for w in alive if w != avoid] or alive
        return min(others, key=lambda w: len(self.lanes[w].pending))

    async def submit(self, index: int, attempt: int) -> dict[str, Any]:
        """The worker's outcome for one item; an item whose worker died is handed to another."""
        avoid: int | None = None
        while True:
            worker = self._pick(avoid)
            lane = self.lanes[worker]
            try:
                return await lane.submit(index, attempt)
            except WorkerLost:
                self.handed_over += 1
                self._lost(worker, lane)
                avoid = worker

    def _lost(self, worker: int, lane: Lane) -> None:
        """The worker's process is gone (killed, out of memory, its node lost): replace it, once per death
        (the other items it held fail the same way; they must not replace it again)."""
        if self.lanes[worker] is not lane:
            return
        self.deaths[worker] += 1
        self.coordinator.forget.remote(lane.name)
        replaced = self.deaths[worker] <= MAX_RESTARTS
        if replaced:
            name = f"w{worker}.{self.deaths[worker]}"
            self.lanes[worker] = Lane(self.spawn(name), name, self.lost)
        if self.say is not None:
            then = "a new one takes its place" if replaced else f"it died {self.deaths[worker]} times: not replaced"
            self.say(f"ray: worker {worker + 1} died; its items go to the others, {then}")

    async def aclose(self) -> None:
        """Let each worker close its run (its response cache writes what it holds), then end them all."""
        closing = [asyncio.ensure_future(lane.handle.aclose.remote()) for lane in self.lanes if not lane.dead]
        if closing:
            await asyncio.wait(closing, timeout=CLOSE_TIMEOUT)
        for lane in self.lanes:
            self.ray.kill(lane.handle)


class RayItems:
    """The generator as the scheduler sees it (an ItemSource), with each item made by a Ray worker."""

    def __init__(self, run: Run, pool: WorkerPool, spend: SpendLimit) -> None:
        gen = run.generator
        self.fingerprint: str = gen.fingerprint
        self.storage: BaseStorage = gen.storage
        self.monitor: GenerationMonitor = gen.monitor
        self.budget: ErrorBudget = gen.budget
        self.concurrency: int = gen.concurrency
        self.max_item_attempts: int = gen.max_item_attempts
        self.ledger_path: Path | None = gen.ledger_path
        self.max_rejected_share: float = gen.max_rejected_share
        self.filter_budget: FilterBudget | None = gen.filter_budget
        self.pool = pool
        self.spend = spend

    async def run_item(self, index: int, usage: Usage, attempt: int = 0) -> Row:
        self.spend.check()  # the run's whole spending, which no single worker sees: no new item once it is spent
        outcome = await self.pool.submit(index, attempt)
        add_counts(self.monitor, outcome["counts"])
        if "endpoints" in outcome:
            worker, report = outcome["endpoints"]
            self.monitor.worker_endpoints[worker] = report
        for name, value in outcome["usage"].items():
            setattr(usage, name, value)
        error = outcome.get("error")
        if error is None:
            row: Row = outcome["row"]
            return row
        raise _rebuilt(error)


def _rebuilt(error: dict[str, Any]) -> Exception:
    """A worker's failure as the exception the scheduler expects from a local item."""
    kind, message = error["type"], error["message"]
    if kind == "rejected":
        return ItemRejected(message, cause=error["cause"])
    if kind == "budget":
        return BudgetExceeded(message)
    if kind == "provider":
        return ProviderError(
            message, retryable=error["retryable"], kind=error["kind"], status_code=error["status_code"]
        )
    if kind == "aborted":
        return RunAborted(message)
    return RuntimeError(f"a Ray worker failed:\n{message}")


async def run_on_ray(
    run: Run,
    target: int,
    execution: ExecutionConfig,
    *,
    overwrite: bool = False,
    retry_rejected: bool = False,
    say: Any = None,
) -> RunResult:
    """Run `run` (prepared: personas and index ready) to `target` rows with `execution.workers` Ray workers."""
    cfg = run.cfg
    with ray_session(execution, worker_env(cfg, os.environ)) as ray:
        settings = {key: p.limiter.settings for key, p in shared_limiters(run.roles).items() if p.limiter is not None}
        coordinator = ray.remote(num_cpus=0)(LimitsCoordinator).remote(settings)
        corpus = run.resources.corpus() if run.resources is not None and cfg.documents is not None else None
        brief = WorkerBrief(
            cfg, run.fingerprint, list(run.generator.personas), dict(run.served), corpus, os.getcwd(), coordinator
        )
        actor = ray.remote(ItemWorker).options(num_cpus=1, max_concurrency=100_000, scheduling_strategy="SPREAD")
        pool = WorkerPool(ray, lambda name: actor.remote(brief, name), execution.workers, coordinator, say)
        try:
            pids = await asyncio.gather(*(lane.handle.ready.remote() for lane in pool.lanes))
        except ray.exceptions.RayError as exc:
            raise RunAborted(f"a Ray worker could not start: {exc}") from None
        if say is not None:
            say(f"ray: {len(pids)} workers (pids {', '.join(map(str, pids))})")
        spend = SpendLimit(run.monitor, cfg.budget.max_cost_usd, cfg.budget.max_total_tokens)
        items = RayItems(run, pool, spend)
        try:
            return await run_items(items, target, overwrite=overwrite, retry_rejected=retry_rejected)
        finally:
            await pool.aclose()
            ray.kill(coordinator)
