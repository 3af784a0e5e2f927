"""What every transport shares about tool calling: the OpenAI-style `tools`/`tool_choice` a caller passes,
the OpenAI-style tool turns in `messages`, and tool calls read back from an OpenAI-shaped answer.

Callers speak OpenAI's form everywhere (tools `{"type": "function", "function": {name, description,
parameters}}`, tool_choice "auto" | "required" | "none" | {"type": "function", "function": {"name"}});
each transport translates it to its protocol (anthropic_messages, gemini_request) or sends it as it is.
"""

from __future__ import annotations

import hashlib
from typing import Any

import orjson

from .base import TOOL_CALLS, ToolCall

# A tool that takes no arguments still needs an object schema on the protocols that require one.
EMPTY_PARAMETERS: dict[str, Any] = {"type": "object", "properties": {}}


def tool_options(kwargs: dict[str, Any]) -> tuple[list[dict[str, Any]] | None, Any, dict[str, Any]]:
    """(tools, tool_choice, the other kwargs): no tools (None or an empty list) means none are offered, and a
    tool_choice then says nothing (OpenAI refuses one without tools)."""
    rest = dict(kwargs)
    tools = rest.pop("tools", None) or None
    choice = rest.pop("tool_choice", None)
    return (list(tools), choice, rest) if tools else (None, None, rest)


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def function_of(tool: dict[str, Any]) -> dict[str, Any]:
    """The function definition {name, description, parameters} of an OpenAI-style tool (or of a bare one)."""
    function = _dict(tool.get("function")) or tool
    return {
        "name": str(function.get("name") or ""),
        "description": str(function.get("description") or ""),
        "parameters": function.get("parameters") or EMPTY_PARAMETERS,
    }


def forced_name(tool_choice: Any) -> str | None:
    """The tool a tool_choice names ({"type": "function", "function": {"name"}}), or None."""
    if isinstance(tool_choice, dict):
        function = tool_choice.get("function")
        name = function.get("name") if isinstance(function, dict) else tool_choice.get("name")
        return str(name) if name else None
    return None


def arguments_object(arguments: Any) -> dict[str, Any]:
    """A call's arguments as the JSON object the protocols that carry objects want (Anthropic's `input`,
    Gemini's `args`). Arguments the model wrote that are not a JSON object are kept, under `arguments`, so a
    recorded invalid call reads back as what was written rather than vanishing."""
    if isinstance(arguments, dict):
        return arguments
    try:
        value = orjson.loads(arguments) if isinstance(arguments, str | bytes) else arguments
    except orjson.JSONDecodeError:
        return {"arguments": arguments}
    return value if isinstance(value, dict) else {"arguments": arguments}


def calls_of(message: dict[str, Any]) -> list[dict[str, Any]]:
    """The OpenAI-style tool calls an assistant message carries: [{"id", "name", "arguments"}]."""
    calls = []
    for call in message.get("tool_calls") or ():
        if not isinstance(call, dict):
            continue
        function = _dict(call.get("function"))
        arguments = function.get("arguments")
        text = arguments if isinstance(arguments, str) else orjson.dumps(arguments or {}).decode()
        calls.append({"id": str(call.get("id") or ""), "name": str(function.get("name") or ""), "arguments": text})
    return calls


def read_openai_calls(raw: Any, skip: str | None = None) -> list[ToolCall] | None:
    """ToolCalls from an OpenAI-shaped `tool_calls` list (dicts, or litellm's objects), leaving out the tool
    named `skip` (a forced structured-output tool, whose arguments are the answer's text)."""
    calls: list[ToolCall] = []
    for item in raw or ():
        call = item if isinstance(item, dict) else _as_dict(item)
        function = _dict(call.get("function"))
        name = str(function.get("name") or "")
        if not name or name == skip:
            continue
        arguments = function.get("arguments")
        text = arguments if isinstance(arguments, str) else orjson.dumps(arguments or {}).decode()
        calls.append(ToolCall(id=str(call.get("id") or f"call_{len(calls)}"), name=name, arguments=text))
    return calls or None


def _as_dict(item: Any) -> dict[str, Any]:
    if hasattr(item, "model_dump"):
        dumped = item.model_dump()
        return dumped if isinstance(dumped, dict) else {}
    function = getattr(item, "function", None)
    return {
        "id": getattr(item, "id", None),
        "function": {"name": getattr(function, "name", None), "arguments": getattr(function, "arguments", None)},
    }


def finish_with_calls(finish_reason: str | None, calls: list[ToolCall] | None) -> str | None:
    """The normalised finish reason: "tool_calls" when the model asked for tools, unless the token limit cut
    the answer ("length", whose cut arguments the caller must not run) or a filter withheld it."""
    if calls and finish_reason not in ("length", "content_filter"):
        return TOOL_CALLS
    return finish_reason


def synthetic_id(*parts: Any) -> str:
    """A stable call id for a protocol whose calls carry none (Gemini): the same answer gets the same ids."""
    digest = hashlib.blake2b(orjson.dumps(parts, default=str), digest_size=8).hexdigest()
    return f"call_{digest}"
