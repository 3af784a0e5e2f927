"""distinct-n across a whole dataset in fixed memory: unique n-grams / all n-grams, with a KMV sketch.

Counting unique n-grams exactly needs memory that grows with the data. A k-minimum-values sketch
(Bar-Yossef et al., 2002) keeps only the k smallest distinct hash values seen; the k-th smallest,
as a fraction of the hash range, estimates the number of distinct items with a relative error of
about 1/sqrt(k) (1.6 % for k = 4096). Below k distinct items the count is exact.
"""

from __future__ import annotations

import heapq

_OFFSET = 1 << 63  # Python's hash is a signed 64-bit value
_RANGE = float(1 << 64)


class DistinctCounter:
    """Estimates how many distinct hashes were added (exact below k)."""

    def __init__(self, k: int = 4096) -> None:
        self.k = k
        self.kept: set[int] = set()
        self.threshold: int | None = None  # once saturated: only hashes below it can still matter

    def add(self, hashes: set[int]) -> None:
        """Add the distinct hashes of one row."""
        if self.threshold is None:
            self.kept |= hashes
        else:
            self.kept.update(filter(self.threshold.__gt__, hashes))  # h < threshold, in C
        if len(self.kept) > 2 * self.k:
            smallest = heapq.nsmallest(self.k, self.kept)
            self.kept = set(smallest)
            self.threshold = smallest[-1]

    def estimate(self) -> float:
        """The estimated number of distinct hashes added."""
        if self.threshold is None and len(self.kept) <= self.k:
            return float(len(self.kept))
        kth = heapq.nsmallest(self.k, self.kept)[-1]
        return (self.k - 1) / ((kth + _OFFSET + 1) / _RANGE)


class DistinctN:
    """distinct-1 and distinct-2 of one stream of token lists (e.g. every assistant turn)."""

    def __init__(self, k: int = 4096) -> None:
        self.unigrams = DistinctCounter(k)
        self.bigrams = DistinctCounter(k)
        self.total_unigrams = 0
        self.total_bigrams = 0

    def add(self, tokens: list[str]) -> None:
        """Add one row's tokens."""
        if not tokens:
            return
        self.total_unigrams += len(tokens)
        self.total_bigrams += len(tokens) - 1
        self.unigrams.add(set(map(hash, tokens)))
        self.bigrams.add(set(map(hash, zip(tokens, tokens[1:], strict=False))))

    def summary(self) -> dict[str, float | None]:
        """distinct-1 and distinct-2 as fractions (None before any token)."""
        return {
            "distinct_1": _ratio(self.unigrams.estimate(), self.total_unigrams),
            "distinct_2": _ratio(self.bigrams.estimate(), self.total_bigrams),
        }


def _ratio(unique: float, total: int) -> float | None:
    return round(min(unique, total) / total, 4) if total else None
