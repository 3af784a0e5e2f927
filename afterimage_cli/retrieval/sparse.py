"""A model-free BM25-style sparse embedding: terms hashed to indices, saturated term counts as values.

Qdrant multiplies each query term by its inverse document frequency (``Modifier.IDF``), so together
with the length-normalised term frequencies here the score is BM25.
"""

from __future__ import annotations

import re
import zlib
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

_TOKEN = re.compile(r"[a-z0-9]+(?:[-_.][a-z0-9]+)*")
# Words that carry no topic: dropping them keeps questions ("What is …?") from matching everything.
STOPWORDS = frozenset(
    "a about above after again against all also am an and any are as at be because been before being below "
    "between both but by can could did do does doing down during each either else every few for from further "
    "had has have having he her here hers him his how i if in into is it its itself just let me more most my "
    "no nor not now of off on once only or other our ours out over own same she should so some such than "
    "that the their theirs them then there these they this those through to too under until up upon very "
    "was we were what when where which while who whom why will with would you your yours yourself "
    "explain tell know give example examples simple terms mean means matter matters work works thing things "
    "should want need like use used using way ways".split()
)


def _stem(word: str) -> str:
    """A light suffix stripper, so 'cache', 'caches', 'cached' and 'caching' share a term."""
    if len(word) <= 4 or word.isdigit():
        return word
    if word.endswith("ies"):
        return word[:-3] + "y"
    for suffix in ("ing", "ed"):
        if word.endswith(suffix) and len(word) - len(suffix) >= 3:
            word = word[: -len(suffix)]
            break
    else:
        if word.endswith("s") and not word.endswith(("ss", "us", "is")):
            word = word[:-1]
    return word[:-1] if word.endswith("e") and len(word) > 3 else word


def tokenize(text: str) -> list[str]:
    """Lower-cased, stemmed content terms; compound tokens (x25519, max-age) also yield their parts."""
    terms: list[str] = []
    for token in _TOKEN.findall(text.lower()):
        parts = re.split(r"[-_.]", token)
        for term in ([token] if len(parts) > 1 else []) + parts:
            if term and term not in STOPWORDS and (len(term) > 1 or term.isdigit()):
                terms.append(_stem(term))
    return terms


def term_index(term: str) -> int:
    """A stable 32-bit index for a term (crc32; collisions are rare enough to ignore at corpus scale)."""
    return zlib.crc32(term.encode("utf-8"))


@dataclass(frozen=True)
class SparseVectorData:
    """Indices and values of a sparse vector, sorted by index."""

    indices: list[int]
    values: list[float]

    @property
    def empty(self) -> bool:
        return not self.indices


def _vector(weights: dict[int, float]) -> SparseVectorData:
    ordered = sorted(weights.items())
    return SparseVectorData(indices=[i for i, _ in ordered], values=[v for _, v in ordered])


def _counts(text: str) -> dict[int, int]:
    """Term counts by index; terms whose hashes collide add up."""
    counts: dict[int, int] = {}
    for term, count in Counter(tokenize(text)).items():
        index = term_index(term)
        counts[index] = counts.get(index, 0) + count
    return counts


class SparseBM25Embedder:
    """BM25 term weights for documents (k1, b, average length of the indexed batch); 1 per query term."""

    kind = "sparse"

    def __init__(self, k1: float = 1.2, b: float = 0.75) -> None:
        self.k1 = k1
        self.b = b
        self.identity = f"sparse-bm25:k1={k1}:b={b}:v1"

    def embed_documents(self, texts: Sequence[str]) -> list[SparseVectorData]:
        """Length-normalised, saturated term frequencies of each text."""
        counts = [_counts(text) for text in texts]
        lengths = [sum(c.values()) for c in counts]
        average = (sum(lengths) / len(lengths)) if lengths else 1.0
        vectors = []
        for count, length in zip(counts, lengths, strict=True):
            norm = self.k1 * (1 - self.b + self.b * length / (average or 1.0))
            vectors.append(_vector({i: tf * (self.k1 + 1) / (tf + norm) for i, tf in count.items()}))
        return vectors

    def embed_query(self, text: str) -> SparseVectorData:
        """Each distinct query term counts once; IDF (in Qdrant) does the weighting."""
        return _vector(dict.fromkeys(_counts(text), 1.0))

    async def aembed_query(self, text: str) -> SparseVectorData:
        return self.embed_query(text)
