"""CoverageOrder: which chunk (or persona) each numbered item gets: every one used once before any twice."""

from __future__ import annotations

import hashlib
import random


class CoverageOrder:
    """An endless sequence of chunk numbers in rounds; round r is a seeded permutation of 0..size-1.

    Position p maps to round p // size, so the choice depends on (seed, p) alone: workers finishing
    out of order, retries and resumed runs all see the same assignment.
    """

    def __init__(self, size: int, seed: int) -> None:
        if size < 1:
            raise ValueError("a coverage order needs at least one chunk")
        self.size = size
        self.seed = seed
        self._rounds: dict[int, tuple[int, ...]] = {}

    def permutation(self, round_number: int) -> tuple[int, ...]:
        """The chunk order of one round (the few rounds in use are cached)."""
        cached = self._rounds.get(round_number)
        if cached is not None:
            return cached
        digest = hashlib.sha256(f"coverage:{self.seed}:{round_number}".encode()).digest()
        order = list(range(self.size))
        random.Random(int.from_bytes(digest[:8], "big")).shuffle(order)
        if len(self._rounds) >= 8:
            self._rounds.pop(next(iter(self._rounds)))
        self._rounds[round_number] = tuple(order)
        return self._rounds[round_number]

    def at(self, position: int) -> int:
        """The chunk number at a position of the sequence."""
        round_number, offset = divmod(position, self.size)
        return self.permutation(round_number)[offset]

    def positions_for_item(self, item_index: int, per_item: int) -> list[int]:
        """The chunk numbers item `item_index` gets when each item takes `per_item` consecutive positions."""
        return self.numbers_from(item_index * per_item, per_item)

    def numbers_from(self, start: int, count: int) -> list[int]:
        """The distinct chunk numbers at positions start … start+count-1."""
        chosen: list[int] = []
        for position in range(start, start + count):
            number = self.at(position)
            if number not in chosen:  # a round boundary can repeat a chunk inside one item
                chosen.append(number)
        return chosen

    def items_to_cover(self, times: int, per_item: int) -> int:
        """How many items use every chunk at least `times` times (counted, since an item never repeats a chunk)."""
        uses = [0] * self.size
        missing, item = self.size, 0
        while missing:
            for number in self.positions_for_item(item, per_item):
                uses[number] += 1
                if uses[number] == times:
                    missing -= 1
            item += 1
        return item
