"""Numbered items: each item's id and plan come from (fingerprint or seed, item number) alone, so timing,
concurrency and resume never change what an item is."""

from __future__ import annotations

import hashlib
import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ..coverage import CoverageOrder
from ..types import Persona


@dataclass
class ItemPlan:
    """What one numbered item gets; derived from (seed, index) alone, so timing never changes it."""

    index: int
    rng: random.Random
    persona: Persona | None
    num_turns: int
    # quality.keep_pairs: the item's opening (instruction and respondent prompt) as its first attempt made it,
    # shared by every attempt's plan so later attempts answer the same opening and can make a pair with it.
    opening: list[Any] | None = None


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
