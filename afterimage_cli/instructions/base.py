"""BaseInstructionGeneratorCallback: strategies for what the simulated user asks first."""

from __future__ import annotations

import random
from abc import ABC, abstractmethod
from typing import Any

from ..providers.base import LLMProvider
from ..types import GeneratedInstructions, Persona


class BaseInstructionGeneratorCallback(ABC):
    """Produces opening user messages. Built by the registry with `llm` (the simulated user's model)."""

    def __init__(self, llm: LLMProvider | None = None, **options: Any) -> None:
        self.llm = llm
        self.options = options
        self._next_unnumbered = 0

    def item_number(self, item_index: int | None) -> int:
        """`item_index`, or for a call from outside the engine (which numbers no items) the next of this
        generator's own count, so coverage orders still advance."""
        if item_index is not None:
            return item_index
        number, self._next_unnumbered = self._next_unnumbered, self._next_unnumbered + 1
        return number

    @abstractmethod
    async def agenerate(
        self,
        original_prompt: str,
        *,
        rng: random.Random | None = None,
        persona: Persona | None = None,
        item_index: int | None = None,
    ) -> GeneratedInstructions:
        """Return at least one instruction.

        `rng` is seeded per item and `item_index` numbers the item, so choices (and coverage orders
        built on the index) never depend on timing, concurrency or resume.
        """
