"""Tool steps (assistant `tool_calls`, `tool` results) in each target's convention.

- OpenAI / TRL messages: the row's own shape. An assistant step that wrote no text has ``"content": null``
  (as OpenAI's API returns it; "content is required unless tool_calls is given"), a `tool` message keeps
  ``tool_call_id`` and ``content`` (OpenAI's tool message has no ``name``; the call names the tool).
- LLaMA-Factory sharegpt: a ``function_call`` turn whose value is ``{"name", "arguments"}`` as JSON (a JSON
  list of them for parallel calls), then one ``observation`` turn (parallel results as a JSON list, in call
  order), and the row's tools as a JSON string in the ``tools`` column.
- Hermes (NousResearch) ChatML: the tools as JSON inside ``<tools></tools>`` in the system prompt, each call
  as ``<tool_call>{"name", "arguments"}</tool_call>`` in the assistant's text, each result as
  ``<tool_response>{"name", "content"}</tool_response>`` in a ``tool`` turn.

Arguments that parse as JSON are written as the object (sharegpt, chatml); a recorded invalid call keeps its
raw string, so the model's recovery stays readable.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import orjson

from ..rows import Message

Step = tuple[Message, list[Message]]
"""An assistant message with tool_calls and the tool messages that answer it."""


def dumps(value: Any) -> str:
    return orjson.dumps(value).decode()


def arguments_value(raw: str) -> Any:
    """The call's arguments as JSON when they parse, else the raw string the model wrote."""
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        return raw


def call_object(call: dict[str, Any]) -> dict[str, Any]:
    """{"name", "arguments"}: the call as Hermes and LLaMA-Factory write it."""
    function = call["function"]
    return {"name": function["name"], "arguments": arguments_value(function["arguments"])}


def openai_calls(turn: Message) -> list[dict[str, Any]]:
    """The step's calls in exactly OpenAI's keys (a row may carry more)."""
    return [
        {
            "id": call["id"],
            "type": "function",
            "function": {"name": call["function"]["name"], "arguments": call["function"]["arguments"]},
        }
        for call in turn["tool_calls"]
    ]


def openai_tool_message(turn: Message, include_reasoning: bool) -> dict[str, Any]:
    """An assistant step or a tool result as an OpenAI chat message (see the module's rules)."""
    if turn["role"] == "tool":
        message: dict[str, Any] = {"role": "tool", "tool_call_id": turn["tool_call_id"], "content": turn["content"]}
        if include_reasoning:
            message["reasoning_content"] = ""
        return message
    message = {"role": "assistant", "content": turn.get("content") or None, "tool_calls": openai_calls(turn)}
    if include_reasoning:
        message["reasoning_content"] = turn.get("reasoning_content") or ""
    return message


def steps(turns: list[Message]) -> Iterator[Message | Step]:
    """The turns with each tool-calling step grouped with its results (the row check guarantees they follow)."""
    index = 0
    while index < len(turns):
        turn = turns[index]
        if turn.get("tool_calls"):
            count = len(turn["tool_calls"])
            yield turn, turns[index + 1 : index + 1 + count]
            index += 1 + count
        else:
            yield turn
            index += 1


def function_definitions(tools: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """{"name", "description", "parameters"} per tool: the shape LLaMA-Factory's tool column documents."""
    return [tool.get("function", tool) for tool in tools]


def sharegpt_call_value(turn: Message) -> str:
    calls = [call_object(call) for call in turn["tool_calls"]]
    return dumps(calls[0] if len(calls) == 1 else calls)


def sharegpt_observation_value(results: list[Message]) -> str:
    contents = [result["content"] for result in results]
    return contents[0] if len(contents) == 1 else dumps(contents)


HERMES_TOOLS_PROMPT = (
    "You are a function calling AI model. The functions you may call are described as JSON inside "
    "<tools></tools>. Call one or more of them when they help with the user's request; do not guess argument "
    "values.\n<tools>\n{tools}\n</tools>\nFor each call, write a JSON object with the function's name and its "
    'arguments inside <tool_call></tool_call> tags:\n<tool_call>\n{{"name": <function-name>, "arguments": '
    "<args-object>}}\n</tool_call>"
)


def hermes_system(system_prompt: str | None, tools: list[dict[str, Any]]) -> str:
    """The system prompt with the Hermes tools block after it."""
    block = HERMES_TOOLS_PROMPT.format(tools=dumps(tools))
    return block if system_prompt is None else f"{system_prompt}\n\n{block}"


def hermes_calls(turn: Message) -> str:
    return "\n".join(f"<tool_call>\n{dumps(call_object(call))}\n</tool_call>" for call in turn["tool_calls"])


def hermes_results(results: list[Message], names: dict[str, str]) -> str:
    """Every result of one step in one tool turn, each named by the call it answers."""
    return "\n".join(
        "<tool_response>\n"
        + dumps({"name": result.get("name") or names.get(result["tool_call_id"], ""), "content": _content(result)})
        + "\n</tool_response>"
        for result in results
    )


def _content(result: Message) -> Any:
    """A result as JSON when it is JSON (Hermes' examples nest the object), else its text."""
    return arguments_value(result["content"])
