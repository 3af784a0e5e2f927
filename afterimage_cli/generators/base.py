"""BaseGenerator: what makes one item's row; engine.scheduler decides which items run and when a run ends."""

from __future__ import annotations

import hashlib
import random
from abc import ABC, abstractmethod
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..engine.items import ItemPlan, ItemPlanner, item_id
from ..engine.retry import ErrorBudget
from ..engine.scheduler import RunResult, run_items
from ..monitor import GenerationMonitor, Usage, current_usage
from ..providers.cache import CallScope, current_scope
from ..storage.base import BaseStorage, Row
from ..types import Persona

if TYPE_CHECKING:
    from ..engine.rounds import BatchRounds
    from ..evaluation.quality import QualityGate


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
        self.rounds: BatchRounds | None = None  # batch mode: the run's rounds (engine/rounds.py)

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

    async def run_item(self, index: int, usage: Usage, attempt: int = 0) -> Row:
        token = current_usage.set(usage)
        scope_token = current_scope.set(CallScope(item=index, seed=self.seed, attempt=attempt))
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
        """Generate until the storage holds `target` rows of this run (see engine.scheduler.run_items)."""
        return await run_items(self, target, overwrite=overwrite, retry_rejected=retry_rejected, rounds=self.rounds)


def merge_metadata(*parts: dict[str, Any] | None) -> dict[str, Any]:
    """Shallow-merge metadata dicts, skipping None values."""
    out: dict[str, Any] = {}
    for part in parts:
        for key, value in (part or {}).items():
            if value is not None:
                out[key] = value
    return out
