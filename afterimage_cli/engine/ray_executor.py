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


class WorkerPool:
    """K worker actors; an item goes to the least busy live one, and again elsewhere if that one dies. A dead
    worker is replaced by a new one (`spawn`), which builds its run on its first item."""

    def __init__(self, ray: Any, workers: list[Any], spawn: Callable[[], Any], say: Any = None) -> None:
        self.ray = ray
        self.say = say
        self.workers = workers
        self.spawn = spawn
        self.busy = [0] * len(workers)
        self.deaths = [0] * len(workers)
        self.handed_over = 0  # items a dying worker left, run again by another
        self._replaced: set[int] = set()  # ids of the handles of workers already replaced

    def _pick(self, avoid: int | None) -> int:
        alive = [w for w in range(len(self.workers)) if self.deaths[w] <= MAX_RESTARTS]
        if not alive:
            raise RunAborted(f"every Ray worker died more than {MAX_RESTARTS} times; the rows written are kept")
        others = [w for w in alive if w != avoid] or alive
        return min(others, key=lambda w: self.busy[w])

    async def submit(self, index: int, attempt: int) -> dict[str, Any]:
        """The worker's outcome for one item; an item whose worker died is handed to another."""
        lost = self.ray.exceptions.RayActorError, self.ray.exceptions.ActorUnavailableError
        avoid: int | None = None
        while True:
            worker = self._pick(avoid)
            self.busy[worker] += 1
            try:
                outcome: dict[str, Any] = await self.workers[worker].run_item.remote(index, attempt)
                return outcome
            except lost:
                self._lost(worker)
                avoid = worker
            finally:
                self.busy[worker] -= 1

    def _lost(self, worker: int) -> None:
        """The worker's process is gone (killed, out of memory, its node lost): replace it, once per death
        (the other items it held fail the same way; their calls must not replace it again)."""
        self.handed_over += 1
        dead = self.workers[worker]
        if id(dead) in self._replaced:
            return
        self._replaced.add(id(dead))
        self.deaths[worker] += 1
        replaced = self.deaths[worker] <= MAX_RESTARTS
        if replaced:
            self.workers[worker] = self.spawn()
        if self.say is not None:
            then = "a new one takes its place" if replaced else f"it died {self.deaths[worker]} times: not replaced"
            self.say(f"ray: worker {worker + 1} died; its items go to the others, {then}")

    def kill_all(self) -> None:
        for worker in self.workers:
            self.ray.kill(worker)


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
        workers = [actor.remote(brief) for _ in range(execution.workers)]
        try:
            pids = await asyncio.gather(*(w.ready.remote() for w in workers))
        except ray.exceptions.RayError as exc:
            raise RunAborted(f"a Ray worker could not start: {exc}") from None
        if say is not None:
            say(f"ray: {len(workers)} workers (pids {', '.join(map(str, pids))})")
        spend = SpendLimit(run.monitor, cfg.budget.max_cost_usd, cfg.budget.max_total_tokens)
        pool = WorkerPool(ray, workers, lambda: actor.remote(brief), say)
        items = RayItems(run, pool, spend)
        try:
            return await run_items(items, target, overwrite=overwrite, retry_rejected=retry_rejected)
        finally:
            pool.kill_all()
            ray.kill(coordinator)
