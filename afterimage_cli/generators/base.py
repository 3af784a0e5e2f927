"""BaseGenerator: the run loop — numbered items, bounded workers, one writer, resume, bounded failure."""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import random
from abc import ABC, abstractmethod
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..coverage import CoverageOrder
from ..engine.ledger import Rejection, RejectionBudget, RunLedger
from ..engine.retry import ErrorBudget
from ..errors import BudgetExceeded, ItemRejected, ProviderError, RunAborted, is_item_level
from ..monitor import GenerationMonitor, Usage, current_usage
from ..providers.cache import CallScope, current_scope
from ..storage.base import BaseStorage, Row
from ..types import Persona

if TYPE_CHECKING:
    from ..evaluation.quality import QualityGate


@dataclass
class ItemPlan:
    """What one numbered item gets; derived from (seed, index) alone, so timing never changes it."""

    index: int
    rng: random.Random
    persona: Persona | None
    num_turns: int


def item_id(fingerprint: str, index: int) -> str:
    """A row id: stable across runs of the same fingerprint."""
    return f"{fingerprint[:16]}-{index:08d}"


def item_rng(seed: int, index: int) -> random.Random:
    """An RNG for one item, independent of every other item."""
    digest = hashlib.sha256(f"{seed}:{index}".encode()).digest()
    return random.Random(int.from_bytes(digest[:8], "big"))


class ItemPlanner:
    """Plans items from (seed, index) alone: every persona once before any twice, turn count uniform."""

    def __init__(self, seed: int, personas: Sequence[Persona], min_turns: int, max_turns: int) -> None:
        self.seed = seed
        self.personas = list(personas)
        self.min_turns = min_turns
        self.max_turns = max_turns
        self._persona_order = CoverageOrder(max(1, len(self.personas)), seed)

    def plan(self, index: int) -> ItemPlan:
        rng = item_rng(self.seed, index)
        persona = self.personas[self._persona_order.at(index)] if self.personas else None
        return ItemPlan(index=index, rng=rng, persona=persona, num_turns=rng.randint(self.min_turns, self.max_turns))


@dataclass
class RunResult:
    """How a run ended."""

    written: int
    resumed: int
    failed_items: list[int]  # rejected in this session


class BaseGenerator(ABC):
    """Runs items 0..N-1 that the storage does not already hold; subclasses make one row per item."""

    def __init__(
        self,
        *,
        storage: BaseStorage,
        monitor: GenerationMonitor,
        budget: ErrorBudget,
        fingerprint: str,
        seed: int = 0,
        concurrency: int = 16,
        personas: Sequence[Persona] = (),
        min_turns: int = 1,
        max_turns: int = 1,
        max_item_attempts: int = 3,
        quality_gate: QualityGate | None = None,
        ledger_path: Path | None = None,
        max_rejected_share: float = 0.05,
    ) -> None:
        self.storage = storage
        self.monitor = monitor
        self.budget = budget
        self.fingerprint = fingerprint
        self.seed = seed
        self.concurrency = concurrency
        self.planner = ItemPlanner(seed, personas, min_turns, max_turns)

        self.min_turns = min_turns
        self.max_turns = max_turns
        self.max_item_attempts = max_item_attempts
        self.quality_gate = quality_gate
        self.ledger_path = ledger_path
        self.max_rejected_share = max_rejected_share

    @property
    def personas(self) -> list[Persona]:
        return self.planner.personas

    @personas.setter
    def personas(self, personas: Sequence[Persona]) -> None:
        """Personas known only once the run prepares (generated from documents) replace the plan's."""
        self.planner = ItemPlanner(self.seed, personas, self.min_turns, self.max_turns)

    def plan(self, index: int) -> ItemPlan:
        """The item's persona and turn count (see ItemPlanner)."""

        return self.planner.plan(index)

    def replan(self, plan: ItemPlan, attempt: int) -> ItemPlan:
        """A regeneration's plan: the same persona and turn count, a fresh RNG for every other choice."""
        if attempt == 0:
            return plan
        digest = hashlib.sha256(f"{self.seed}:{plan.index}:attempt-{attempt}".encode()).digest()
        rng = random.Random(int.from_bytes(digest[:8], "big"))
        return ItemPlan(index=plan.index, rng=rng, persona=plan.persona, num_turns=plan.num_turns)

    @abstractmethod
    async def generate_item(self, plan: ItemPlan) -> Row:
        """Make the row for one item (without id and run metadata; `run` adds them)."""

    def _finish_row(self, row: Row, plan: ItemPlan, usage: Usage) -> Row:
        row["id"] = item_id(self.fingerprint, plan.index)
        meta = row.setdefault("metadata", {})
        meta["run_fingerprint"] = self.fingerprint
        meta["item_index"] = plan.index
        meta["usage"] = usage.as_dict()
        return {"id": row.pop("id"), **row}

    async def _run_item(self, index: int, usage: Usage) -> Row:
        token = current_usage.set(usage)
        scope_token = current_scope.set(CallScope(item=index, seed=self.seed))
        try:
            plan = self.plan(index)
            if self.quality_gate is None:
                row = await self.generate_item(plan)
            else:  # judge, and regenerate below the bar (bounded); keeps the best attempt
                row = await self.quality_gate.run(lambda attempt: self.generate_item(self.replan(plan, attempt)))
            return self._finish_row(row, plan, usage)
        finally:
            current_scope.reset(scope_token)
            current_usage.reset(token)

    async def run(self, target: int, *, overwrite: bool = False, retry_rejected: bool = False) -> RunResult:
        """Generate until the storage holds `target` rows of this run; resumes from what it already holds.

        Items are taken in number order, skipping those written and those an earlier session rejected
        (unless `retry_rejected`); a rejected item is replaced by the next number, so the run still ends
        with exactly `target` rows. A budget stop (cost, rejections) takes no new item and lets the items
        in flight finish; a dead server, a rejected key or an unknown model stop at once."""
        existing = self.storage.open_run(self.fingerprint, overwrite=overwrite)
        ledger = RunLedger(self.ledger_path, "generate", self.fingerprint)
        try:
            earlier = ledger.open(overwrite=overwrite)
        except BaseException:
            self.storage.close()
            raise
        skip = {i: r for i, r in earlier.items() if item_id(self.fingerprint, i) not in existing}
        skip = {} if retry_rejected else skip
        rejections = RejectionBudget(self.max_rejected_share, rows=len(existing), rejected=len(skip))
        self.monitor.target = target
        self.monitor.rows_resumed = len(existing)
        ledger.start(target, resumed_rows=len(existing), skipped_rejected=len(skip))
        engine = _ItemLoop(self, target - len(existing), existing, skip, ledger, rejections)
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
            self.storage.close()
            ledger.end(status, self.monitor.rows_written, self.monitor.usage.as_dict(), reason)
        if engine.stop is not None:
            raise engine.stop
        return RunResult(
            written=self.monitor.rows_written, resumed=self.monitor.rows_resumed, failed_items=engine.rejected
        )


class _ItemLoop:
    """The workers of one session: each takes the next item while rows are still needed."""

    def __init__(
        self,
        generator: BaseGenerator,
        needed: int,
        existing: set[str],
        skip: dict[int, Rejection],
        ledger: RunLedger,
        rejections: RejectionBudget,
    ) -> None:
        self.gen = generator
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
                for _ in range(min(self.gen.concurrency, self.needed)):
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
                row = await gen._run_item(index, usage)
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
            self.ledger.checkpoint(gen.monitor.rows_written, gen.monitor.usage.as_dict())

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


def merge_metadata(*parts: dict[str, Any] | None) -> dict[str, Any]:
    """Shallow-merge metadata dicts, skipping None values."""
    out: dict[str, Any] = {}
    for part in parts:
        for key, value in (part or {}).items():
            if value is not None:
                out[key] = value
    return out
