"""Sample rows and helpers shared by the export tests (no tests here)."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import orjson
from typer.testing import CliRunner

# `datasets` must never try the Hub from a test: the machine is offline and a hang would stall the suite.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_DISABLE_PROGRESS_BARS", "1")

from afterimage_cli.cli import app  # noqa: E402

Turn = tuple[str, str, str | None]
"""(role, content, reasoning) of one turn."""

PER_ROW_FORMATS = ("sharegpt", "messages", "openai", "alpaca", "llama_factory", "chatml")
PAIR_FORMATS = ("dpo", "orpo", "kto", "openai-preference", "llama_factory_ranking")
FORMAT_NAMES = PER_ROW_FORMATS + PAIR_FORMATS
SYSTEM = "You are a careful assistant."


def turn(role: str, content: str, reasoning: str | None = None) -> dict[str, Any]:
    """One turn as our generator writes it."""
    return {"role": role, "content": content, "reasoning_content": reasoning}


def evaluated(score: float, grade: str) -> dict[str, Any]:
    """The evaluation fields of a judged row."""
    return {
        "evaluation": {"coherence": {"score": score, "feedback": "ok"}, "overall_grade": grade},
        "final_score": score,
    }


def sample_rows() -> list[dict[str, Any]]:
    """Our rows and the published afterimage's: multi-turn with reasoning, missing fields, unicode."""
    return [
        {
            "id": "run:0",
            "conversations": [
                turn("user", "Explain Python decorators."),
                turn("assistant", "A decorator wraps a function.", "The user wants the concept first."),
                turn("user", "Show an example?"),
                turn("assistant", "@cache\ndef f(x): ...", "A stdlib example is clearest."),
                turn("user", "And with arguments?"),
                turn("assistant", "Write a factory returning the decorator.", None),
            ],
            "metadata": {"instruction_index": 0},
            "instruction_context": None,
            "response_context": None,
            "persona": "a student",
            **evaluated(0.9, "perfect"),
        },
        {  # the published afterimage: no id, no evaluation, no final_score, no reasoning_content
            "conversations": [
                {"role": "user", "content": "What is a vector database?"},
                {"role": "assistant", "content": "A store indexed for nearest-neighbour search."},
            ],
            "metadata": {},
            "context": "old field name",
        },
        {
            "id": "run:2",
            "conversations": [
                turn("user", "Explain Python decorators."),
                turn("assistant", "It's magic.", "Keep it short."),
            ],
            **evaluated(0.3, "bad"),
        },
        {  # published default for an unevaluated row: 0.0 is not a verdict
            "conversations": [turn("user", "Explain Python decorators."), turn("assistant", "Unjudged.")],
            "evaluation": None,
            "final_score": 0.0,
        },
        {
            "id": "run:4",
            "conversations": [
                turn("user", "Ünïcode — 日本語?"),
                turn("assistant", 'はい, "quotes" and <tags> survive.', "思考"),
                turn("user", "Thanks"),
                turn("assistant", "You're welcome."),
            ],
            "final_score": None,
            "evaluation": None,
        },
        {
            "id": "run:5",
            "conversations": [turn("user", "How does HTTP caching work?"), turn("assistant", "With headers.")],
            **evaluated(0.7, "good"),
        },
    ]


def preference_rows() -> list[dict[str, Any]]:
    """Rows with chosen/rejected pairs as generate writes them (at_turn last, every; quality.keep_pairs, whose
    conversation goes on past its pair) and one SFT row without a pair: 5 pairs in all."""
    decorators = [
        turn("user", "Explain Python decorators."),
        turn("assistant", "A decorator wraps a function.", "The user wants the concept first."),
        turn("user", "Show an example?"),
        turn("assistant", "@cache\ndef f(x): ...", "A stdlib example is clearest."),
    ]
    return [
        {
            "id": "pref:0",
            "conversations": decorators,
            "chosen": decorators[3],
            "rejected": turn("assistant", "Decorators are magic; no example needed."),
            "metadata": {"preference": {"strategy": "samples", "turn": 2, "margin": 0.4}},
        },
        {
            "id": "pref:1",
            "conversations": [
                turn("user", "What is a vector database?"),
                turn("assistant", "A store indexed for nearest-neighbour search."),
                turn("user", "When do I need one?"),
                turn("assistant", "When you search by meaning at scale.", "Answer the need, not the tech."),
            ],
            "chosen": turn("assistant", "When you search by meaning at scale.", "Answer the need, not the tech."),
            "rejected": turn("assistant", "Always, for everything."),
            "earlier_pairs": [
                {
                    "turn": 1,
                    "chosen": turn("assistant", "A store indexed for nearest-neighbour search."),
                    "rejected": turn("assistant", "A kind of spreadsheet."),
                    "preference": {"strategy": "degrade", "turn": 1, "axis": "wrong"},
                }
            ],
            "metadata": {"preference": {"strategy": "degrade", "turn": 2, "axis": "verbose"}},
        },
        {  # quality.keep_pairs: the kept attempt goes on after the turn where the attempts parted
            "id": "pref:2",
            "conversations": [
                turn("user", "How does HTTP caching work?"),
                turn("assistant", "With Cache-Control and ETag headers."),
                turn("user", "And revalidation?"),
                turn("assistant", "If-None-Match asks whether the ETag still holds."),
            ],
            "chosen": turn("assistant", "With Cache-Control and ETag headers."),
            "rejected": turn("assistant", "Browsers just remember pages."),
            "metadata": {"preference": {"strategy": "quality_gate", "turn": 1}},
            **evaluated(0.9, "perfect"),
        },
        {"id": "sft:0", "conversations": [turn("user", "Hi"), turn("assistant", "Hello!")]},
        {
            "id": "pref:3",
            "conversations": [turn("user", "Ünïcode — 日本語?"), turn("assistant", "はい, <tags> survive.", "思考")],
            "chosen": turn("assistant", "はい, <tags> survive.", "思考"),
            "rejected": turn("assistant", 'いいえ "quotes"'),
            "metadata": {"preference": {"turn": 1}},
        },
    ]


def write_jsonl(path: Path, rows: list[Any]) -> Path:
    """Write rows (dicts, or raw str lines) as JSONL."""
    with open(path, "wb") as fh:
        for row in rows:
            fh.write(row.encode() + b"\n" if isinstance(row, str) else orjson.dumps(row) + b"\n")
    return path


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    """Every record of a JSONL file."""
    return [orjson.loads(line) for line in path.read_bytes().splitlines() if line.strip()]


def invoke_export(*args: str, input: bytes | str | None = None) -> Any:
    """Run `afterimage export ARGS` in process; the result has .exit_code, .stdout, .stderr."""
    return CliRunner().invoke(app, ["export", *args], input=input)


def source_turns(row: dict[str, Any], include_reasoning: bool = True) -> list[Turn]:
    """A row's turns as (role, content, reasoning), reasoning only on assistant turns and only if kept."""
    return [
        (
            t["role"],
            t["content"],
            (t.get("reasoning_content") or None) if include_reasoning and t["role"] == "assistant" else None,
        )
        for t in row["conversations"]
    ]


_THINK = re.compile(r"<think>\n(.*?)\n</think>\n\n(.*)", re.DOTALL)


def split_think(role: str, text: str) -> Turn:
    """Undo the `<think>…</think>` convention."""
    match = _THINK.fullmatch(text)
    return (role, match.group(2), match.group(1)) if match else (role, text, None)


_SHAREGPT_ROLES = {"human": "user", "gpt": "assistant"}
_CHATML_SEGMENT = re.compile(r"<\|im_start\|>(system|user|assistant)\n(.*?)<\|im_end\|>\n", re.DOTALL)


def turns_of(format_name: str, record: dict[str, Any]) -> list[Turn]:
    """Recover the conversation's turns (system excluded) from one output record of a per-row format."""
    if format_name in ("sharegpt", "llama_factory"):
        return [
            split_think(_SHAREGPT_ROLES[t["from"]], t["value"])
            for t in record["conversations"]
            if t["from"] != "system"
        ]
    if format_name in ("messages", "openai"):
        return [
            (m["role"], m["content"], m.get("reasoning_content") or None)
            for m in record["messages"]
            if m["role"] != "system"
        ]
    if format_name == "alpaca":
        pairs = [*record["history"], [record["instruction"], record["output"]]]
        return [
            t for user, assistant in pairs for t in (split_think("user", user), split_think("assistant", assistant))
        ]
    if format_name == "chatml":
        segments = _CHATML_SEGMENT.findall(record["text"])
        assert "".join(f"<|im_start|>{r}\n{c}<|im_end|>\n" for r, c in segments) == record["text"]
        return [split_think(role, content) for role, content in segments if role != "system"]
    raise AssertionError(f"no turn reader for {format_name}")
