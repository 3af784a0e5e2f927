"""The online scheduler: workers take numbered items while rows are still needed, one writer appends
each row, the ledger records sessions and rejections, and the budgets decide when to stop. A generator
only makes one item's row (`run_item`); everything about which items run, and when a run ends, is here."""

from __future__ import annotations

import asyncio
import itertools
from collections import deque
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from ..errors import BudgetExceeded, ItemRejected, ProviderError, RunAborted, is_item_level
from ..monitor import GenerationMonitor, Usage
from ..storage.base import BaseStorage, Row
from .items import item_id
from .ledger import FilterBudget, Rejection, RejectionBudget, RunLedger
from .retry import ErrorBudget

if TYPE_CHECKING:
    from .rounds import BatchRounds


class ItemSource(Protocol):
    """What the scheduler needs of a generator: where rows go, the budgets, and one item's row."""

    fingerprint: str
    storage: BaseStorage
    monitor: GenerationMonitor
    budget: ErrorBudget
    concurrency: int
    max_item_attempts: int
    ledger_path: Path | None
    max_rejected_share: float
    filter_budget: FilterBudget | None  # rejections the kind of run expects, with a budget of their own

    async def run_item(self, index: int, usage: Usage, attempt: int = 0) -> Row: ...


@dataclass
class RunResult:
    """How a run ended."""

    written: int
    resumed: int
    failed_items: list[int]  # rejected in this session


async def run_items(
    gen: ItemSource,
    target: int,
    *,
    overwrite: bool = False,
    retry_rejected: bool = False,
    rounds: BatchRounds | None = None,
) -> RunResult:
    """Run `gen`'s items until its storage holds `target` rows of the run; resumes from what it holds.

    Items are taken in number order, skipping those written and those an earlier session rejected
    (unless `retry_rejected`); a rejected item is replaced by the next number, so the run still ends
    with exactly `target` rows. A budget stop (cost, rejections) takes no new item and lets the items
    in flight finish; a dead server, a rejected key or an unknown model stop at once. With `rounds` (batch
    mode) the same items advance in rounds of batches, resuming from the batches and answers the ledger holds."""
    existing = gen.storage.open_run(gen.fingerprint, overwrite=overwrite)
    ledger = RunLedger(gen.ledger_path, "generate", gen.fingerprint)
    try:
        earlier = ledger.open(overwrite=overwrite)
    except BaseException:
        gen.storage.close()
        raise
    if rounds is not None:
        rounds.resume(ledger, lambda item: item_id(gen.fingerprint, item) in existing, gen.fingerprint[:16])
    skip = {i: r for i, r in earlier.items() if item_id(gen.fingerprint, i) not in existing}
    skip = {} if retry_rejected else skip
    rejections = RejectionBudget(
        gen.max_rejected_share,
        rows=len(existing),
        rejected=len(skip),
        filtered=gen.filter_budget,
        earlier_causes=[r.cause for r in skip.values()],
    )
    gen.monitor.target = target
    gen.monitor.rows_resumed = len(existing)
    ledger.start(target, resumed_rows=len(existing), skipped_rejected=len(skip))
    engine = ItemLoop(gen, target - len(existing), existing, skip, ledger, rejections, rounds)
    status, reason = "interrupted", None
    try:
        await engine.run()
        status = "finished" if engine.stop is None else "stopped"
        reason = None if engine.stop is None else str(engine.stop)
    except BaseException as exc:
        reason = str(exc) or type(exc).__name__
        if isinstance(exc, RunAborted):
            status = "stopped"
        raise
    finally:
        gen.storage.close()
        ledger.end(status, gen.monitor.rows_written, gen.monitor.ledger_usage(), reason)
    if engine.stop is not None:
        raise engine.stop
    return RunResult(written=gen.monitor.rows_written, resumed=gen.monitor.rows_resumed, failed_items=engine.rejected)


class ItemLoop:
    """The workers of one session: each takes the next item while rows are still needed."""

    def __init__(
        self,
        generator: ItemSource,
        needed: int,
        existing: set[str],
        skip: dict[int, Rejection],
        ledger: RunLedger,
        rejections: RejectionBudget,
        rounds: BatchRounds | None = None,
    ) -> None:
        self.gen = generator
        self.rounds = rounds
        self.slots = rounds.items_in_flight if rounds is not None else generator.concurrency
        self.needed = needed
        self.ledger = ledger
        self.rejections = rejections
        self.retry: deque[int] = deque()
        self.attempts: dict[int, int] = {}
        self.in_flight = 0
        self.rejected: list[int] = []
        self.stop: RunAborted | None = None  # set by a budget: take nothing new, let the items in flight end
        fingerprint = generator.fingerprint
        self._numbers = (i for i in itertools.count() if i not in skip and item_id(fingerprint, i) not in existing)

    async def run(self) -> None:
        if self.needed <= 0:
            return
        try:
            async with asyncio.TaskGroup() as group:
                for _ in range(min(self.slots, self.needed)):
                    group.create_task(self.worker())
        except* Exception as failures:
            # One worker's error ended the run (the others were cancelled): raise it, not the group.
            first: BaseException = failures
            while isinstance(first, BaseExceptionGroup):
                first = first.exceptions[0]
            raise first from None

    def _next(self) -> int | None:
        if self.stop is not None or self.gen.monitor.rows_written + self.in_flight >= self.needed:
            return None
        return self.retry.popleft() if self.retry else next(self._numbers)

    async def worker(self) -> None:
        gen = self.gen
        while (index := self._next()) is not None:
            gen.budget.check()
            usage = Usage()
            self.in_flight += 1
            try:
                with self.rounds.item() if self.rounds is not None else nullcontext():
                    row = await gen.run_item(index, usage, self.attempts.get(index, 0))
            except BudgetExceeded as exc:
                self.stop = self.stop or exc  # the item stays unwritten: a re-run with more budget makes it
                continue
            except ItemRejected as exc:
                self._reject(index, exc.cause, str(exc), usage)
                continue
            except ProviderError as error:
                if is_item_level(error) and not self._never_worked(error):
                    self._reject(index, error.kind, str(error), usage)
                    continue
                if not error.retryable:
                    raise RunAborted(f"stopping: {error}") from error
                self._failed(index, error, usage)
                continue
            finally:
                self.in_flight -= 1
            gen.storage.append(row)
            gen.monitor.record_row()
            gen.budget.item_done(True)
            self.rejections.row_done()
            self.ledger.checkpoint(gen.monitor.rows_written, gen.monitor.ledger_usage)

    def _never_worked(self, error: ProviderError) -> bool:
        """A plain 400 before any call of the session has succeeded is a malformed request (an unknown
        parameter, a wrong model type), refused for every item alike: it stops the run at once."""
        monitor = self.gen.monitor
        return error.kind == "bad_request" and monitor.usage.calls == 0 and monitor.cache_hits == 0

    def _failed(self, index: int, error: ProviderError, usage: Usage) -> None:
        """A retryable failure that outlasted the call's retries: try the item again, then reject it."""
        self.attempts[index] = self.attempts.get(index, 0) + 1
        self.gen.monitor.record_item_failed()
        self.gen.budget.item_done(False)
        if self.attempts[index] < self.gen.max_item_attempts:
            self.retry.append(index)
        else:
            self._reject(index, error.kind, str(error), usage)

    def _reject(self, index: int, cause: str, error: str, usage: Usage) -> None:
        gen = self.gen
        attempts = self.attempts.pop(index, 0) + 1
        self.ledger.reject(Rejection(index, item_id(gen.fingerprint, index), cause, error, attempts, usage.as_dict()))
        self.rejected.append(index)
        gen.monitor.record_rejected(cause)
        try:
            self.rejections.reject(cause, error)
        except RunAborted as exc:
            self.stop = self.stop or exc
