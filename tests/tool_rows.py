"""Tool-calling rows in the TOOLS.md shape, written by hand for the export, evaluate and view tests (no tests here).

`tool_row` is what tools-core's generator writes: a first exchange with one call, a second with two
parallel calls, then a plain answer; `recovery_row` holds an invalid call, its error result and the
model's corrected call.
"""

from __future__ import annotations

import json
from typing import Any

WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather in a city.",
        "parameters": {
            "type": "object",
            "properties": {
                "city": {"type": "string", "description": "City name"},
                "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
            },
            "required": ["city"],
        },
    },
}
CONVERT = {
    "type": "function",
    "function": {
        "name": "convert_currency",
        "description": "Convert an amount between currencies.",
        "parameters": {
            "type": "object",
            "properties": {
                "amount": {"type": "number"},
                "from_currency": {"type": "string"},
                "to_currency": {"type": "string"},
            },
            "required": ["amount", "from_currency", "to_currency"],
        },
    },
}
BOOK = {
    "type": "function",
    "function": {
        "name": "book_table",
        "description": "Book a restaurant table.",
        "parameters": {
            "type": "object",
            "properties": {"restaurant": {"type": "string"}, "people": {"type": "integer", "minimum": 1}},
            "required": ["restaurant", "people"],
        },
    },
}
TOOLS = [WEATHER, CONVERT, BOOK]


def call(call_id: str, name: str, arguments: dict[str, Any] | str) -> dict[str, Any]:
    """One OpenAI tool call; `arguments` is serialised unless it is already the raw string."""
    raw = arguments if isinstance(arguments, str) else json.dumps(arguments)
    return {"id": call_id, "type": "function", "function": {"name": name, "arguments": raw}}


def calling(*calls: dict[str, Any], content: str = "") -> dict[str, Any]:
    """An assistant step that calls tools."""
    return {"role": "assistant", "content": content, "reasoning_content": None, "tool_calls": list(calls)}


def result(call_id: str, name: str, content: str) -> dict[str, Any]:
    return {"role": "tool", "tool_call_id": call_id, "name": name, "content": content}


def said(role: str, content: str) -> dict[str, Any]:
    return {"role": role, "content": content, "reasoning_content": None}


def tool_use(calls: int, invalid: int, used: list[str]) -> dict[str, Any]:
    return {
        "calls": calls,
        "invalid_calls": invalid,
        "tools_used": sorted(set(used)),
        "target_tools": sorted(set(used)),
        "result_source": "mock",
    }


def tool_row(index: int = 0) -> dict[str, Any]:
    """Two exchanges: one call, then two parallel calls; the answers use the results."""
    return {
        "id": f"tools-{index:03d}",
        "conversations": [
            said("user", f"What's the weather in Oslo? ({index})"),
            calling(call("call_1", "get_weather", {"city": "Oslo", "unit": "celsius"})),
            result("call_1", "get_weather", '{"temp": -3, "sky": "snow"}'),
            said("assistant", "It is -3 °C and snowing in Oslo."),
            said("user", "Convert 100 EUR to NOK and book a table for 2 at Maaemo."),
            calling(
                call("call_2", "convert_currency", {"amount": 100, "from_currency": "EUR", "to_currency": "NOK"}),
                call("call_3", "book_table", {"restaurant": "Maaemo", "people": 2}),
                content="Let me do both.",
            ),
            result("call_2", "convert_currency", '{"amount": 1165.4}'),
            result("call_3", "book_table", '{"confirmed": true, "time": "19:00"}'),
            said("assistant", "100 EUR is 1165.40 NOK, and your table at Maaemo is booked for 19:00."),
        ],
        "tools": TOOLS,
        "metadata": {"tool_use": tool_use(3, 0, ["get_weather", "convert_currency", "book_table"])},
        "instruction_context": None,
        "response_context": None,
        "persona": "a traveller",
    }


def recovery_row(index: int = 0) -> dict[str, Any]:
    """An invalid call (arguments not JSON), its error result, the corrected call, the answer."""
    return {
        "id": f"recovery-{index:03d}",
        "conversations": [
            said("user", "Weather in Bergen, please."),
            calling(call("call_a", "get_weather", '{"city": "Bergen"')),
            result("call_a", "get_weather", "error: arguments are not valid JSON"),
            calling(call("call_b", "get_weather", {"city": "Bergen"})),
            result("call_b", "get_weather", '{"temp": 6, "sky": "rain"}'),
            said("assistant", "6 °C and rain in Bergen."),
        ],
        "tools": TOOLS,
        "metadata": {"tool_use": tool_use(2, 1, ["get_weather"])},
    }


def plain_row(index: int = 0) -> dict[str, Any]:
    """A row without tools, as every run before tools wrote them."""
    return {
        "id": f"plain-{index:03d}",
        "conversations": [said("user", "What is 2+2?"), said("assistant", "4.")],
        "metadata": {},
    }
