"""Exact and near-duplicate conversations in bounded memory: one-permutation MinHash + LSH banding.

Each conversation becomes the set of its word 3-grams. One-permutation hashing (Li, Owen & Zhang,
2012) splits the 64-bit hashes of those shingles into NUM_BINS bins by their low bits and keeps each
bin's minimum, so a signature costs one hash per shingle instead of one per shingle and permutation;
empty bins borrow from the next non-empty one (rotation densification, Shrivastava & Li, 2014).
Signatures are cut into BANDS bands of ROWS_PER_BAND values; rows sharing a band are candidates, and a
candidate is a near-duplicate when the fraction of equal bins (an estimate of Jaccard similarity)
reaches the threshold; equal content hashes make it an exact duplicate.

Memory is fixed up front: the last `window` signatures live in a ring buffer and each band maps its
keys through a direct-mapped table (a newer row overwrites an older one in its slot), so duplicates
further apart than `window` rows are not found. Python's `hash` is used for speed: signatures are
comparable only within one process, which is all a single pass needs.
"""

from __future__ import annotations

import operator
from array import array
from dataclasses import dataclass

NUM_BINS = 64
BANDS = 16
ROWS_PER_BAND = NUM_BINS // BANDS
SHINGLE = 3
_BIN_MASK = NUM_BINS - 1
_LOW_30_BITS = ((1 << 30) - 1).__and__
_GOLDEN = 0x9E3779B97F4A7C15  # spreads borrowed minima so they rarely equal a real one
_VALUE_MASK = 0xFFFF  # 16 bits of each bin's minimum: equal by chance 1 time in 65,536


@dataclass(frozen=True)
class DuplicateMatch:
    """What an earlier row this one duplicates: exact or near, its estimated similarity, its label."""

    kind: str
    similarity: float
    of: str | None


def signature(words: list[str]) -> list[int] | None:
    """The MinHash signature (NUM_BINS 16-bit values) of a word list, or None when it is empty."""
    if not words:
        return None
    shingles = zip(*(words[i:] for i in range(SHINGLE)), strict=False) if len(words) >= SHINGLE else iter(words)
    # 30-bit hashes are one-digit ints: sorting and hashing them is markedly cheaper than 64-bit ones.
    descending = sorted(set(map(_LOW_30_BITS, map(hash, shingles))), reverse=True)
    # dict() keeps the last value per key: with hashes descending, each bin's minimum (all C loops).
    minima = dict(zip(map(_BIN_MASK.__and__, descending), descending, strict=True))
    if len(minima) < NUM_BINS:
        _densify(minima)
    return [(minima[position] >> 6) & _VALUE_MASK for position in range(NUM_BINS)]


def _densify(minima: dict[int, int]) -> None:
    """Fill each empty bin from the next non-empty one (circularly), tagged by the distance to it."""
    filled = sorted(minima)
    for before, after in zip(filled, [*filled[1:], filled[0] + NUM_BINS], strict=True):
        donor = minima[after & _BIN_MASK]
        for position in range(before + 1, after):
            minima[position & _BIN_MASK] = donor + (after - position) * _GOLDEN


class NearDuplicateIndex:
    """Remembers the last `window` rows; `check_and_add` reports the first earlier duplicate found."""

    def __init__(self, window: int = 50_000, threshold: float = 0.8) -> None:
        self.window = window
        self.threshold = threshold
        self.slots = 1 << max(10, (2 * window - 1).bit_length())
        # Preallocated (and touched) so memory stays flat however many rows stream through.
        self.tables = [array("I", [0]) * self.slots for _ in range(BANDS)]
        self.signatures = array("H", [0]) * (window * NUM_BINS)
        self.content = array("q", [0]) * window
        self.labels: list[str | None] = [None] * window
        self.added = 0
        self.exact = 0
        self.near = 0

    def check_and_add(self, words: list[str], content_hash: int, label: str | None) -> DuplicateMatch | None:
        """Compare a row (its lower-cased words) against the remembered ones, then remember it."""
        sig = signature(words)
        if sig is None:
            return None
        ordinal = self.added
        keys = [hash((band, *sig[band * ROWS_PER_BAND : (band + 1) * ROWS_PER_BAND])) for band in range(BANDS)]
        match = self._best_candidate(sig, keys, content_hash, ordinal)
        self._remember(sig, keys, content_hash, label, ordinal)
        if match is not None:
            if match.kind == "exact":
                self.exact += 1
            else:
                self.near += 1
        return match

    def _best_candidate(
        self, sig: list[int], keys: list[int], content_hash: int, ordinal: int
    ) -> DuplicateMatch | None:
        best: DuplicateMatch | None = None
        seen: set[int] = set()
        for band, key in enumerate(keys):
            stored = self.tables[band][key % self.slots]
            candidate = stored - 1
            if stored == 0 or candidate in seen or ordinal - candidate > self.window:
                continue
            seen.add(candidate)
            ring = candidate % self.window
            start = ring * NUM_BINS
            equal = sum(map(operator.eq, sig, self.signatures[start : start + NUM_BINS]))
            similarity = equal / NUM_BINS
            if self.content[ring] == content_hash:
                return DuplicateMatch("exact", 1.0, self.labels[ring])
            if similarity >= self.threshold and (best is None or similarity > best.similarity):
                best = DuplicateMatch("near", round(similarity, 3), self.labels[ring])
        return best

    def _remember(self, sig: list[int], keys: list[int], content_hash: int, label: str | None, ordinal: int) -> None:
        ring = ordinal % self.window
        self.signatures[ring * NUM_BINS : (ring + 1) * NUM_BINS] = array("H", sig)
        self.content[ring] = content_hash
        self.labels[ring] = label
        for band, key in enumerate(keys):
            self.tables[band][key % self.slots] = ordinal + 1
        self.added += 1
