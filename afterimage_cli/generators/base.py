"""BaseGenerator: the run loop — numbered items, bounded workers, one writer, resume, bounded failure."""

from __future__ import annotations

import asyncio
import hashlib
import random
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..coverage import CoverageOrder
from ..engine.retry import ErrorBudget
from ..errors import BudgetExceeded, ProviderError, RunAborted
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
    failed_items: list[int]


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

    async def _run_item(self, index: int) -> Row:
        usage = Usage()
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

    async def run(self, target: int, *, overwrite: bool = False) -> RunResult:
        """Generate until the storage holds items 0..target-1; resumes from what it already holds."""
        existing = self.storage.open_run(self.fingerprint, overwrite=overwrite)
        pending = [i for i in range(target) if item_id(self.fingerprint, i) not in existing]
        self.monitor.target = target
        self.monitor.rows_resumed = target - len(pending)
        queue: asyncio.Queue[int] = asyncio.Queue()
        for index in pending:
            queue.put_nowait(index)
        attempts: dict[int, int] = {}
        failed: list[int] = []
        spent: list[BudgetExceeded] = []

        async def worker() -> None:
            while not spent:
                try:
                    index = queue.get_nowait()
                except asyncio.QueueEmpty:
                    return
                self.budget.check()
                try:
                    row = await self._run_item(index)
                except BudgetExceeded as reached:
                    # Refused at the item's first call: take no new item, and let the others finish the
                    # items they have already paid for (their rows are written) before the run stops.
                    spent.append(reached)
                    return
                except ProviderError as error:
                    if not error.retryable:
                        raise RunAborted(f"stopping: {error}") from error
                    attempts[index] = attempts.get(index, 0) + 1
                    self.monitor.record_item_failed()
                    if attempts[index] < self.max_item_attempts:
                        queue.put_nowait(index)
                    else:
                        failed.append(index)
                    self.budget.item_done(False)
                    continue
                self.storage.append(row)
                self.monitor.record_row()
                self.budget.item_done(True)

        try:
            async with asyncio.TaskGroup() as group:
                for _ in range(min(self.concurrency, len(pending))):
                    group.create_task(worker())
        except* Exception as failures:
            # One worker's error ended the run (the others were cancelled): raise it, not the group.
            first: BaseException = failures
            while isinstance(first, BaseExceptionGroup):
                first = first.exceptions[0]
            raise first from None

        finally:
            self.storage.close()
        if spent:
            raise spent[0]
        return RunResult(written=self.monitor.rows_written, resumed=self.monitor.rows_resumed, failed_items=failed)


def merge_metadata(*parts: dict[str, Any] | None) -> dict[str, Any]:
    """Shallow-merge metadata dicts, skipping None values."""
    out: dict[str, Any] = {}
    for part in parts:
        for key, value in (part or {}).items():
            if value is not None:
                out[key] = value
    return out
