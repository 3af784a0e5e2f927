"""Tool calling in the Gemini API's shape: OpenAI-style tools as `functionDeclarations`, tool_choice as
`toolConfig.functionCallingConfig`, tool turns as `functionCall` / `functionResponse` parts, and the calls of an
answer read back as ToolCalls.

Gemini's calls carry no id (the Gemini API leaves FunctionCall.id empty): each gets a stable one made from the
answer's responseId, its position, name and arguments, so reading the same answer again (a batch line, a cached
body) gives the same ids. A call's `thoughtSignature` (Gemini 3 requires it back on the calls of the current
turn) is kept by id for the dialog's next request; a call the model did not make here (a recorded dialog, an
answer read in another process) gets the placeholder Google documents for calls it cannot verify.
"""

from __future__ import annotations

from typing import Any

import orjson

from .base import ToolCall
from .gemini_schema import gemini_json_schema, gemini_schema
from .tool_calls import arguments_object, calls_of, forced_name, function_of, synthetic_id

# What Google documents to send as a functionCall part's thoughtSignature when the real one is unknown.
SKIP_SIGNATURE = "skip_thought_signature_validator"
MODES = {"auto": "AUTO", "required": "ANY", "none": "NONE"}


def function_declarations(tools: list[dict[str, Any]], json_schema: bool) -> list[dict[str, Any]]:
    """The body's `tools`: one entry of functionDeclarations, parameters as JSON Schema itself for models
    that read it (`parametersJsonSchema`), else as the OpenAPI subset (`parameters`)."""
    declarations = []
    for tool in tools:
        function = function_of(tool)
        declaration: dict[str, Any] = {"name": function["name"]}
        if function["description"]:
            declaration["description"] = function["description"]
        if json_schema:
            declaration["parametersJsonSchema"] = gemini_json_schema(function["parameters"])
        else:
            declaration["parameters"] = gemini_schema(function["parameters"])
        declarations.append(declaration)
    return [{"functionDeclarations": declarations}]


def tool_config(choice: Any) -> dict[str, Any] | None:
    """`toolConfig` for an OpenAI tool_choice: auto → AUTO, required → ANY, none → NONE, a named function → ANY
    restricted to it; None when no choice was asked for (the API's default is AUTO)."""
    name = forced_name(choice)
    if name is not None:
        return {"functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": [name]}}
    if choice is None:
        return None
    return {"functionCallingConfig": {"mode": MODES.get(str(choice), "AUTO")}}


def call_parts(message: dict[str, Any], signatures: dict[str, str], needs_signature: bool) -> list[dict[str, Any]]:
    """An assistant message with tool calls as model parts: its text (if any), then a functionCall per call."""
    text = message.get("content")
    parts: list[dict[str, Any]] = [{"text": text}] if isinstance(text, str) and text else []
    for call in calls_of(message):
        part: dict[str, Any] = {"functionCall": {"name": call["name"], "args": arguments_object(call["arguments"])}}
        signature = signatures.get(call["id"]) or (SKIP_SIGNATURE if needs_signature else None)
        if signature:
            part["thoughtSignature"] = signature
        parts.append(part)
    return parts


def response_part(message: dict[str, Any], names: dict[str, str]) -> dict[str, Any]:
    """A `tool` message as a functionResponse part: a JSON-object result as it is, any other under `output`
    (the key Gemini documents for a function's output)."""
    content = message.get("content")
    text = content if isinstance(content, str) else orjson.dumps(content).decode()
    try:
        value = orjson.loads(text)
    except orjson.JSONDecodeError:
        value = None
    response = value if isinstance(value, dict) else {"output": text}
    call_id = str(message.get("tool_call_id") or "")
    name = message.get("name") or names.get(call_id) or ""
    return {"functionResponse": {"name": str(name), "response": response}}


def read_calls(data: dict[str, Any], parts: list[Any]) -> tuple[list[ToolCall] | None, dict[str, str]]:
    """(the answer's calls, their thought signatures by id)."""
    calls: list[ToolCall] = []
    signatures: dict[str, str] = {}
    answer = data.get("responseId") or orjson.dumps(data.get("usageMetadata"), option=orjson.OPT_SORT_KEYS).decode()
    for part in parts:
        call = part.get("functionCall") if isinstance(part, dict) else None
        if not isinstance(call, dict):
            continue
        name = str(call.get("name") or "")
        arguments = orjson.dumps(call.get("args") or {}).decode()
        call_id = str(call.get("id") or synthetic_id(answer, len(calls), name, arguments))
        calls.append(ToolCall(id=call_id, name=name, arguments=arguments))
        if isinstance(part.get("thoughtSignature"), str):
            signatures[call_id] = part["thoughtSignature"]
    return calls or None, signatures
