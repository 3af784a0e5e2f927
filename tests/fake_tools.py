"""Tool calling on the fake server, for every protocol it speaks (each route translates its wire shape to and
from the OpenAI view these helpers read).

With tools offered and the last message the user's, the fake model calls a tool: the one whose name the user
text mentions, else one picked by a hash of that text; its arguments are sampled from the tool's parameters
schema (`sample`). After tool results it answers in text that quotes them. Knobs on the server:
`tool_call_rate` (the share of eligible requests answered with calls; "required" always calls),
`invalid_tool_args_rate` (the share of calls whose arguments break the schema or, where the protocol carries
text, are not JSON) and `parallel_tool_calls` (calls per answer). tool_choice "none" never calls; a
tool_choice naming a function is the server's forced call (`_forced_tool`), as before.
"""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING, Any

import orjson

from tests import fakeserver as base

if TYPE_CHECKING:
    from tests.fakeserver import FakeOpenAIServer


def _function(tool: Any) -> dict[str, Any]:
    function = tool.get("function") if isinstance(tool, dict) and isinstance(tool.get("function"), dict) else tool
    return function if isinstance(function, dict) else {}


def _draw(*parts: Any) -> float:
    """A deterministic draw in [0, 1) from what the request says (the same request gets the same answer)."""
    digest = hashlib.sha256(orjson.dumps(parts, default=str)).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def pick(functions: list[dict[str, Any]], text: str) -> int:
    """The tool the user's text names (the longest name that appears, with _ or - read as spaces), else one
    chosen by the text's hash."""
    low = text.lower()
    named = [
        (len(str(f.get("name"))), i)
        for i, f in enumerate(functions)
        if f.get("name") and any(form in low for form in _forms(str(f["name"]).lower()))
    ]
    if named:
        return max(named)[1]
    return int(_draw("pick", text) * len(functions))


def _forms(name: str) -> set[str]:
    return {name, name.replace("_", " "), name.replace("-", " ")}


def calls_for(
    server: FakeOpenAIServer, tools: Any, tool_choice: Any, messages: list[dict[str, Any]], *, as_text: bool = True
) -> list[dict[str, Any]] | None:
    """The calls the fake model makes ([{"name", "arguments"}], arguments a JSON string when `as_text`, else
    an object), or None when it answers in text."""
    functions = [f for f in (_function(t) for t in tools or ()) if f.get("name")]
    if not functions or tool_choice == "none" or not messages or messages[-1].get("role") != "user":
        return None
    text = base._text(messages[-1].get("content"))
    if tool_choice != "required" and _draw("rate", text, len(messages)) >= server.tool_call_rate:
        return None
    first = pick(functions, text)
    calls = []
    for n in range(max(1, int(server.parallel_tool_calls))):
        function = functions[(first + n) % len(functions)]
        schema = function.get("parameters") if isinstance(function.get("parameters"), dict) else {}
        arguments: Any = base.sample(schema or {"type": "object", "properties": {}})
        broken = False
        if server.invalid_tool_args_rate and _draw("invalid", text, n) < server.invalid_tool_args_rate:
            server.stats["invalid_tool_args"] += 1
            # Every other invalid call (where arguments travel as text) is not JSON at all: a cut-off string.
            broken = as_text and server.stats["invalid_tool_args"] % 2 == 0
            arguments = _violated(schema, arguments)
        encoded = orjson.dumps(arguments).decode()
        calls.append(
            {"name": function["name"], "arguments": (encoded[:-1] if broken else encoded) if as_text else arguments}
        )
    server.stats["tool_calls"] += len(calls)
    return calls


def _violated(schema: dict[str, Any], valid: Any) -> Any:
    """Arguments that break the schema and are still an object (every protocol carries an object)."""
    wrong = base.violate(schema, valid)
    if isinstance(wrong, dict):
        return wrong
    props = schema.get("properties") if isinstance(schema.get("properties"), dict) else {}
    if props:
        name = next(iter(props))
        sub = base._resolve(props[name], schema)
        return {**(valid if isinstance(valid, dict) else {}), name: [] if base._type_of(sub) != "array" else "x"}
    return {"unexpected": ["not", "the", "expected", "type"], "additional": True}


def answers_results(messages: list[dict[str, Any]]) -> bool:
    """Whether the last message is a tool result, which the fake model answers by quoting."""
    return bool(messages) and messages[-1].get("role") == "tool"


def result_answer(messages: list[dict[str, Any]]) -> str:
    """A text answer built from the tool results since the last assistant turn that called them."""
    results = []
    for message in reversed(messages):
        if message.get("role") != "tool":
            break
        name = message.get("name") or "the tool"
        results.append(f"{name} returned {base._text(message.get('content'))}")
    turn = sum(1 for m in messages if m.get("role") == "user")
    said = "; ".join(reversed(results))
    return f"According to the tools, {said}. So {base.FACTS[(turn - 1) % len(base.FACTS)]}."


def openai_message(server: FakeOpenAIServer, calls: list[dict[str, Any]]) -> dict[str, Any]:
    """An assistant message asking for `calls`, in OpenAI's wire shape (content null)."""
    tool_calls = []
    for n, call in enumerate(calls):
        function = {"name": call["name"], "arguments": call["arguments"]}
        tool_calls.append({"id": f"call_fake{server._ids}_{n}", "type": "function", "function": function})
    return {"role": "assistant", "content": None, "tool_calls": tool_calls}
