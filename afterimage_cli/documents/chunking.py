"""Splitting text into overlapping chunks on sentence boundaries."""

from __future__ import annotations

import re
from dataclasses import dataclass

_PARAGRAPH = re.compile(r"\n\s*\n")
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9\"'(])")


@dataclass(frozen=True)
class _Unit:
    text: str
    ends_paragraph: bool


def _split_long(sentence: str, size: int) -> list[str]:
    """Cut a sentence longer than `size` at word boundaries (a word longer than `size` is cut hard)."""
    pieces: list[str] = []
    current = ""
    for word in sentence.split():
        while len(word) > size:
            if current:
                pieces.append(current)
                current = ""
            pieces.append(word[:size])
            word = word[size:]
        if current and len(current) + 1 + len(word) > size:
            pieces.append(current)
            current = word
        else:
            current = f"{current} {word}" if current else word
    if current:
        pieces.append(current)
    return pieces


def _units(text: str, size: int) -> list[_Unit]:
    """Sentences (each at most `size` long), marking the last one of each paragraph."""
    units: list[_Unit] = []
    for paragraph in _PARAGRAPH.split(text):
        flat = " ".join(paragraph.split())
        if not flat:
            continue
        pieces = [p for s in _SENTENCE_END.split(flat) for p in _split_long(s, size)]
        units += [_Unit(p, i == len(pieces) - 1) for i, p in enumerate(pieces)]
    return units


def _join(units: list[_Unit]) -> str:
    out = ""
    for unit in units:
        out += unit.text + ("\n\n" if unit.ends_paragraph else " ")
    return out.strip()


def _length(units: list[_Unit]) -> int:
    return sum(len(u.text) + 1 for u in units)


def chunk_text(text: str, size: int, overlap: int) -> list[str]:
    """Chunks of at most about `size` characters; each repeats up to `overlap` characters of whole
    sentences from the end of the previous one, so a fact cut at a boundary is whole in one of them."""
    if overlap >= size:
        raise ValueError(f"chunk_overlap ({overlap}) must be smaller than chunk_size ({size})")
    chunks: list[str] = []
    current: list[_Unit] = []
    fresh = False  # whether `current` holds a unit not yet emitted in a chunk
    for unit in _units(text, size):
        if current and fresh and _length(current) + len(unit.text) > size:
            chunks.append(_join(current))
            tail: list[_Unit] = []
            for previous in reversed(current):
                if _length(tail) + len(previous.text) + 1 > overlap:
                    break
                tail.insert(0, previous)
            current = tail
            fresh = False
        while current and _length(current) + len(unit.text) > size:
            current.pop(0)  # the overlap must leave room for the new sentence
        current.append(unit)
        fresh = True
    if current and fresh:
        chunks.append(_join(current))
    return chunks
