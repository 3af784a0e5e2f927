"""Rows for the viewer and the Hugging Face export tests: what generate + evaluate write, with every
field the page shows (persona, contexts, retrieval hits, verdicts, usage, ended_by, duplicates), plus a
preference row and a tool-calling row in the OpenAI message shape, and a run ledger with rejections."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson

GRADES = ("perfect", "good", "needs_improvement", "bad", "not_acceptable")
PERSONAS = ("a nervous first-time founder", "a retired sysadmin", "a curious student")
TOPICS = ("http caching", "python lists", "tls handshakes", "vector databases", "unit tests")
FINGERPRINT = "f" * 64
CRITERIA = ("coherence", "factuality", "grounding", "helpfulness", "relevance")


def evaluated_row(index: int, *, turns: int = 2) -> dict[str, Any]:
    """A generated and judged row, different for every index."""
    topic = TOPICS[index % len(TOPICS)]
    grade = GRADES[index % len(GRADES)]
    score = round(0.95 - 0.2 * (index % len(GRADES)) + 0.001 * (index % 7), 4)
    conversation = []
    for turn in range(turns):
        conversation.append({"role": "user", "content": f"Question {index}.{turn}: how does {topic} work?"})
        conversation.append(
            {
                "role": "assistant",
                "content": f"Answer {index}.{turn}: {topic} works step by step, case {index * 7919 % 1000}.",
                "reasoning_content": f"Thinking about {topic} for row {index}." if turn == 0 else None,
            }
        )
    chunk = f"doc-{index % 4}-chunk-{index % 3}"
    return {
        "id": f"row-{index:05d}",
        "conversations": conversation,
        "metadata": {
            "context_id": chunk,
            "context_ids": [chunk],
            "document_ids": [f"doc-{index % 4}"],
            "persona_name": PERSONAS[index % len(PERSONAS)],
            "retrieval": {"query": f"how does {topic} work?", "hits": [{"id": chunk, "score": 3.5 + index % 5}]},
            "num_turns": turns,
            "planned_turns": turns,
            "ended_by": "max_turns" if index % 4 else "end_token",
            "models": {"respondent": "openai/gpt-4o-mini", "correspondent": "openai/gpt-4o-mini"},
            "run_fingerprint": FINGERPRINT,
            "usage": {
                "calls": 2 * turns,
                "prompt_tokens": 300 + index,
                "completion_tokens": 80 + index,
                "total_tokens": 380 + 2 * index,
                "cost_usd": 0.0001 * (index + 1),
            },
            "metrics": {"duplicate": None, "issues": []},
        },
        "instruction_context": f"Chapter {index % 4}: {topic} explained from the basics up.",
        "response_context": f"Chapter {index % 4}: {topic} explained from the basics up.",
        "persona": PERSONAS[index % len(PERSONAS)],
        "evaluation": {
            **{name: {"score": score, "feedback": f"{name} feedback {index}", "applicable": True} for name in CRITERIA},
            "overall_grade": grade,
            "judge_model": "openai/gpt-4o",
        },
        "final_score": score,
    }


def preference_row(index: int) -> dict[str, Any]:
    """A preference pair as generation.kind: preference writes it: history, then chosen and rejected."""
    return {
        "id": f"pref-{index:03d}",
        "conversations": [{"role": "user", "content": "Which is faster, a list or a tuple?"}],
        "chosen": {"role": "assistant", "content": "Tuples are slightly faster to create and iterate."},
        "rejected": {"role": "assistant", "content": "Lists are always faster, use them everywhere."},
        "metadata": {"preference": {"strategy": "samples", "scores": [0.9, 0.3], "margin": 0.6}},
    }


def tool_row(index: int) -> dict[str, Any]:
    """A tool-calling conversation in the OpenAI message shape."""
    call = {
        "id": "call_weather_1",
        "type": "function",
        "function": {"name": "get_weather", "arguments": '{"city": "Oslo", "unit": "celsius"}'},
    }
    return {
        "id": f"tool-{index:03d}",
        "conversations": [
            {"role": "user", "content": "What's the weather in Oslo?"},
            {"role": "assistant", "content": "", "tool_calls": [call]},
            {"role": "tool", "tool_call_id": "call_weather_1", "content": '{"temp": -3, "sky": "snow"}'},
            {"role": "assistant", "content": "It is -3 °C and snowing in Oslo."},
        ],
        "metadata": {"models": {"respondent": "openai/gpt-4o-mini"}},
    }


def sample_rows(count: int = 30) -> list[dict[str, Any]]:
    rows = [evaluated_row(i, turns=1 + i % 3) for i in range(count)]
    # rows 7 and 12 were flagged by evaluate as near-duplicates of row 2: one cluster of three
    for dup in (n for n in (7, 12) if n < count):
        rows[dup]["metadata"]["metrics"]["duplicate"] = {"kind": "near", "similarity": 0.91, "of": "row-00002"}
    if count > 5:
        rows[5]["conversations"][0]["content"] = "Tell me about the <script>alert(1)</script> tag </script> please"
    return rows


def write_jsonl(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.write_bytes(b"".join(orjson.dumps(row) + b"\n" for row in rows))
    return path


def write_ledger(output: Path, rejections: list[dict[str, Any]]) -> Path:
    """A generate ledger beside OUTPUT recording these rejections."""
    ledger = output.with_name(output.stem + ".ledger.jsonl")
    records = [{"event": "start", "command": "generate", "fingerprint": FINGERPRINT, "target": 30}]
    records += [{"event": "rejected", "attempts": 1, "usage": {"cost_usd": 0.002}, **r} for r in rejections]
    ledger.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in records))
    return ledger
