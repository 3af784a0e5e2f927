"""Rows and fake-judge responders shared by the evaluate tests."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import orjson
import yaml

FAST_RETRY = {"max_attempts": 4, "base_delay": 0.01, "max_delay": 0.02}
TOPICS = ("python lists", "http caching", "unit tests", "vector databases", "garbage collection", "tls handshakes")


def conversation_row(index: int, *, context: bool = False, with_id: bool = True, **extra: Any) -> dict[str, Any]:
    """A two-turn row in the seed schema, different for every index."""
    topic = TOPICS[index % len(TOPICS)]
    row: dict[str, Any] = {
        "conversations": [
            {"role": "user", "content": f"Question {index}: how do {topic} work in case {index}?"},
            {
                "role": "assistant",
                "content": f"Answer {index}: {topic} work by design number {index * 7919 % 1000}. "
                f"Start with the basics of {topic}, then practise case {index} step by step.",
            },
        ],
        "metadata": {"persona_name": None},
        "instruction_context": f"{topic} are explained in chapter {index}: the basics come first." if context else None,
        "response_context": None,
        "persona": None,
    }
    if with_id:
        row = {"id": f"row-{index:05d}", **row}
    row.update(extra)
    return row


def published_row(index: int) -> dict[str, Any]:
    """A row as the published afterimage writes it: no id, no reasoning_content, evaluation null, 0.0 score."""
    row = conversation_row(index, with_id=False, context=index % 2 == 0)
    for turn in row["conversations"]:
        turn.pop("reasoning_content", None)
    row["evaluation"] = None
    if index % 3 == 0:
        row["final_score"] = 0.0
    row["metadata"] = {"context_id": f"doc-{index}", "batch_id": "batch-1"}
    return row


def write_rows(path: Path, rows: Iterable[dict[str, Any]]) -> Path:
    path.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in rows))
    return path


def judge_responder(score_for: Callable[[str, str], float] | None = None) -> Callable[[dict[str, Any]], str | None]:
    """A fake-server responder: judge requests get one verdict per asked criterion; others the fake's own
    well-behaved turns (None).

    `score_for(criterion, transcript)` picks each score (0.8 by default).
    """

    def respond(body: dict[str, Any]) -> str | None:
        fmt = body.get("response_format")
        if not isinstance(fmt, dict):
            return None
        asked = list(fmt["json_schema"]["schema"]["properties"])
        text = str(body["messages"][-1]["content"])
        verdict = {
            name: {"feedback": f"{name} looks fine", "score": score_for(name, text) if score_for else 0.8}
            for name in asked
        }
        return orjson.dumps(verdict).decode()

    return respond


def judge_config(tmp_path: Path, server: Any | None = None, **evaluation: Any) -> Path:
    """A config for evaluate: fast retries, no cache, and (with a server) the judge pointed at it."""
    cfg: dict[str, Any] = {"respondent": {"model": "offline"}, "retry": FAST_RETRY, "cache": {"enabled": False}}
    if server is not None:
        evaluation = {"judge": {"model": "fake-model", "api_base": server.api_base}, **evaluation}
    if evaluation:
        cfg["evaluation"] = evaluation
    path = tmp_path / "evaluate.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path
