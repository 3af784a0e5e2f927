"""Resuming a partly evaluated output: which input rows it already holds (by id or content hash), and
whether they were evaluated with the same settings (the evaluation fingerprint each row records)."""

from __future__ import annotations

import hashlib
from array import array
from bisect import bisect_left
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson

from ..config import EvaluationConfig, ModelConfig
from ..engine.fingerprint import content_settings
from ..storage.jsonl import resumable_rows

FINGERPRINT_KEY = "evaluation_fingerprint"


def evaluation_fingerprint(cfg: EvaluationConfig, judge: ModelConfig | None, served: str | None = None) -> str:
    """A hash of every setting that decides what evaluate writes into a row: the judge (model, temperature,
    max_tokens, params; not its endpoint, key or limits) or none, the criteria, weights, grades, context
    limit and duplicate settings, and the model an api_base server said it serves (another model loaded
    behind the same URL is another judge). Resuming an output made with another one would mix verdicts."""
    data = content_settings(cfg)
    data["judge"] = None if judge is None else content_settings(judge)
    if served is not None:
        data["served"] = served
    return hashlib.sha256(orjson.dumps(data, option=orjson.OPT_SORT_KEYS)).hexdigest()[:16]


def row_evaluation_fingerprint(row: dict[str, Any]) -> str | None:
    """The evaluation fingerprint an output row was written under (None: not written by this evaluate)."""
    meta = row.get("metadata")
    return meta.get(FINGERPRINT_KEY) if isinstance(meta, dict) else None


def row_key(row: dict[str, Any]) -> str:
    """A row's identity: its id, or a hash of its conversation and contexts when it has none."""
    row_id = row.get("id")
    if row_id is not None:
        return f"id:{row_id}"
    content = [row.get("conversations"), row.get("instruction_context"), row.get("response_context")]
    return "sha:" + hashlib.blake2b(orjson.dumps(content), digest_size=16).hexdigest()


def _digest(key: str) -> int:
    """64 bits of a key: 8 bytes per remembered row instead of a Python string."""
    return int.from_bytes(hashlib.blake2b(key.encode(), digest_size=8).digest(), "big")


class DoneKeys:
    """The keys of rows already in the output, as a sorted array of 64-bit digests (8 bytes per row)."""

    def __init__(self, digests: array[int] | None = None) -> None:
        self.digests = array("Q", sorted(digests)) if digests else array("Q")

    def __len__(self) -> int:
        return len(self.digests)

    def __contains__(self, key: object) -> bool:
        if not self.digests or not isinstance(key, str):
            return False
        digest = _digest(key)
        at = bisect_left(self.digests, digest)
        return at < len(self.digests) and self.digests[at] == digest


def scan_output(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """(line number, row) of an existing output, after cutting the torn tail an interrupted run left."""
    if not path.exists() or path.stat().st_size == 0:
        return
    yield from resumable_rows(path)


def digest_of(row: dict[str, Any]) -> int:
    """The digest DoneKeys stores for a row."""
    return _digest(row_key(row))
