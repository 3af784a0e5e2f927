"""How alike two turns are: normalised words, word 3-gram shingles, Jaccard similarity and containment.

Turns of one dialog are compared with each other many times (every earlier turn of a side, at every
turn), so a turn's words and shingles are memoised by its text, a few hundred turns at most: shingles are
kept as 64-bit hashes, a few kB per turn, so the memo stays small beside a run's other memory.
"""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache

_WORD = re.compile(r"\w+")
SHINGLE = 3  # words per shingle: long enough that shared boilerplate ("can you tell me") stays a small share
_MEMO = 512  # turns remembered: enough for the dialogs in flight to re-read their own few turns


@lru_cache(maxsize=_MEMO)
def words(text: str) -> tuple[str, ...]:
    """The text's words, lower-cased after Unicode compatibility folding (so "ﬁle" and "file" match)."""
    return tuple(_WORD.findall(unicodedata.normalize("NFKC", text).lower()))


@lru_cache(maxsize=_MEMO)
def shingles(text: str) -> frozenset[int]:
    """Hashes of the text's word 3-grams; a text of fewer words is one shingle of them all (so "Yes."
    matches only "yes")."""
    found = words(text)
    if len(found) < SHINGLE:
        return frozenset({hash(found)}) if found else frozenset()
    return frozenset(map(hash, zip(*(found[i:] for i in range(SHINGLE)), strict=False)))


def jaccard(a: str, b: str) -> float:
    """Shared shingles over all shingles of either text: 1.0 for the same words in the same order."""
    sa, sb = shingles(a), shingles(b)
    if not sa or not sb:
        return 0.0
    shared = len(sa & sb)
    return shared / (len(sa) + len(sb) - shared)


def containment(part: str, whole: str) -> float:
    """The share of `part`'s shingles that occur in `whole`: 1.0 when `part` is a stretch of `whole`."""
    sp = shingles(part)
    if not sp:
        return 0.0
    return len(sp & shingles(whole)) / len(sp)


def normalized(text: str) -> str:
    """The text as its words joined by single spaces: punctuation, case and spacing do not count."""
    return " ".join(words(text))
