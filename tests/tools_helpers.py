"""Shared pieces of the tool-calling tests: five tools, a config around them, and checks of tool rows."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jsonschema
import orjson

from .helpers import make_config

FIVE_TOOLS: list[dict[str, Any]] = [
    {
        "name": "get_weather",
        "description": "Current weather for a city",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}, "unit": {"type": "string", "enum": ["c", "f"]}},
            "required": ["city"],
        },
        "returns": {
            "type": "object",
            "properties": {"temperature": {"type": "number"}, "sky": {"type": "string"}},
            "required": ["temperature", "sky"],
        },
    },
    {
        "name": "search_flights",
        "description": "Flights between two airports on a date",
        "parameters": {
            "type": "object",
            "properties": {
                "origin": {"type": "string"},
                "destination": {"type": "string"},
                "date": {"type": "string"},
            },
            "required": ["origin", "destination", "date"],
        },
    },
    {
        "name": "convert_currency",
        "description": "Convert an amount between currencies",
        "parameters": {
            "type": "object",
            "properties": {
                "amount": {"type": "number", "minimum": 0},
                "source": {"type": "string"},
                "target": {"type": "string"},
            },
            "required": ["amount", "source", "target"],
        },
        "returns": {"type": "number"},
    },
    {
        "name": "lookup_order",
        "description": "Status of a customer's order",
        "parameters": {
            "type": "object",
            "properties": {"order_id": {"type": "integer", "minimum": 1}},
            "required": ["order_id"],
        },
    },
    {
        "name": "send_email",
        "description": "Send an email",
        "parameters": {
            "type": "object",
            "properties": {"to": {"type": "string"}, "subject": {"type": "string"}, "body": {"type": "string"}},
            "required": ["to", "subject", "body"],
        },
    },
]
NAMES = [tool["name"] for tool in FIVE_TOOLS]


def tools_config(tmp_path: Path, server: Any, *, tools: Any = None, **sections: Any) -> Path:
    """A config whose respondent (and simulated user) is the fake server, with the five tools."""
    tools = tools or {}
    section = tools if "file" in tools or "from_mcp" in tools else {"definitions": FIVE_TOOLS, **tools}
    base: dict[str, Any] = {
        "respondent": {"model": "fake-model", "api_base": server.api_base},
        "instructions": {"generator": "tools", "options": {}},
        "generation": {"num_conversations": 20, "max_turns": 3, "min_turns": 1, "concurrency": 4, "seed": 3},
        "modifiers": [],
        "tools": section,
    }
    return make_config(tmp_path, **{**base, **sections})


def call_pairs(row: dict[str, Any]) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """(call, its tool message) of every call in the row; asserts the OpenAI layout: each assistant message
    with tool_calls is followed by exactly one tool message per call, in order, and each turn ends in text."""
    turns = row["conversations"]
    pairs = []
    i = 0
    while i < len(turns):
        message = turns[i]
        i += 1
        if message["role"] != "assistant" or not message.get("tool_calls"):
            continue
        for call in message["tool_calls"]:
            answer = turns[i]
            assert answer["role"] == "tool" and answer["tool_call_id"] == call["id"], (call, answer)
            assert answer["name"] == call["function"]["name"]
            pairs.append((call, answer))
            i += 1
    ids = [call["id"] for call, _ in pairs]
    assert len(ids) == len(set(ids)), ids
    tool_ids = [t["tool_call_id"] for t in turns if t["role"] == "tool"]
    assert sorted(tool_ids) == sorted(ids)  # no tool message without its call
    for before, after in zip(turns, turns[1:], strict=False):
        if after["role"] == "user":
            assert before["role"] == "assistant" and not before.get("tool_calls"), "a turn must end in a text answer"
    assert turns[-1]["role"] == "assistant" and not turns[-1].get("tool_calls")
    return pairs


def check_calls(row: dict[str, Any]) -> None:
    """Every call's arguments parse and fit its schema, unless it is a recorded invalid call answered by an error."""
    schemas = {tool["function"]["name"]: tool["function"]["parameters"] for tool in row["tools"]}
    invalid = set(row["metadata"]["tool_use"]["invalid_call_ids"])
    for call, answer in call_pairs(row):
        function = call["function"]
        if call["id"] in invalid:
            assert "error" in orjson.loads(answer["content"]), answer
            continue
        jsonschema.validate(orjson.loads(function["arguments"]), schemas[function["name"]])
