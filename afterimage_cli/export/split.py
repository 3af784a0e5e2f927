"""A deterministic train/val split: each row's side is a hash of its id (or its conversation) and the seed.

Hashing instead of shuffling keeps the split streaming and stable: the same row lands on the same side
in every run and every format, and duplicate conversations without ids can never straddle the split.
"""

from __future__ import annotations

import hashlib

from ..errors import UsageError
from .rows import Row

TRAIN, VAL = "train", "val"
_HASH_SPACE = float(1 << 64)


class Splitter:
    """Assigns rows (or any text key) to `TRAIN` with probability ``train_fraction``, else `VAL`."""

    def __init__(self, train_fraction: float, seed: int = 0) -> None:
        if not 0.0 < train_fraction < 1.0:
            raise UsageError(f"--split {train_fraction} must be between 0 and 1 (the train fraction, e.g. 0.9)")
        self.train_fraction = train_fraction
        # blake2b takes at most 16 bytes of salt; hashing the seed fits any integer into them.
        self._salt = hashlib.blake2b(str(seed).encode(), digest_size=16).digest()

    def part_of_row(self, row: Row) -> str:
        """The row's side, by its id or, lacking one, its turns."""
        row_id = row.get("id")
        if row_id is not None:
            return self.part_of_key(f"id:{row_id}")
        return self.part_of_key("\x00".join(f"{t['role']}\x00{t['content']}" for t in row["conversations"]))

    def part_of_key(self, key: str) -> str:
        """The side of any text key (a grouping format's records, split by what they share)."""
        digest = hashlib.blake2b(key.encode(), digest_size=8, salt=self._salt).digest()
        return TRAIN if int.from_bytes(digest, "big") / _HASH_SPACE < self.train_fraction else VAL
