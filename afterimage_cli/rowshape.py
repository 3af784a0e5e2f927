"""The shapes a row's messages come in, read as OpenAI chat messages for the commands that only look at them.

`generate` writes ``conversations`` of ``{role, content, reasoning_content}``; preference rows add
``chosen`` and ``rejected`` answers after a shared history; tool-calling rows carry assistant
``tool_calls`` and ``tool`` messages; exported files hold ``messages`` (OpenAI/TRL), ``prompt`` +
``chosen``/``rejected`` (TRL preference) or ShareGPT ``{from, value}`` turns. `view`, and the dataset
card of `export --format hf`, read all of them through `messages_of` and `preference_of`, which never
raise: what is not a message is shown as text.
"""

from __future__ import annotations

from typing import Any

from .rowcheck import json_type

Message = dict[str, Any]

# ShareGPT's speaker names (LLaMA-Factory adds function_call/observation for tools).
_SHAREGPT_ROLES = {
    "human": "user",
    "user": "user",
    "gpt": "assistant",
    "assistant": "assistant",
    "system": "system",
    "function_call": "assistant",
    "observation": "tool",
    "tool": "tool",
}
MESSAGE_LISTS = ("conversations", "messages", "prompt")


def as_message(value: Any) -> Message:
    """One message in the OpenAI shape: a {role, content} dict as given, ShareGPT's {from, value} mapped,
    anything else shown as an assistant message's text."""
    if isinstance(value, dict):
        if "role" in value:
            return value
        if "from" in value:
            role = _SHAREGPT_ROLES.get(str(value.get("from")), str(value.get("from")))
            return {"role": role, "content": value.get("value")}
    if isinstance(value, str):
        return {"role": "assistant", "content": value}
    return {"role": "assistant", "content": "" if value is None else str(value)}


def messages_of(row: dict[str, Any]) -> list[Message]:
    """The row's conversation (for a preference row, the history the two answers continue)."""
    for key in MESSAGE_LISTS:
        value = row.get(key)
        if isinstance(value, list):
            for message in value:  # a loop, not all(generator): this runs for every row view reads
                if type(message) is not dict or "role" not in message:
                    return [as_message(m) for m in value]
            return value  # already OpenAI messages (every row generate writes): no copy
        if isinstance(value, str) and key == "prompt":
            return [{"role": "user", "content": value}]
    return []


def _answer(value: Any) -> list[Message] | None:
    if value is None:
        return None
    if isinstance(value, list):
        return [as_message(m) for m in value]
    return [as_message(value)]


def preference_of(row: dict[str, Any]) -> tuple[list[Message], list[Message]] | None:
    """(chosen, rejected) as message lists when the row is a preference pair, else None."""
    chosen, rejected = _answer(row.get("chosen")), _answer(row.get("rejected"))
    if chosen is None and rejected is None:
        return None
    return chosen or [], rejected or []


def text_of(message: Message) -> str:
    """A message's content as text (multimodal parts joined; tool calls are not content)."""
    content = message.get("content")
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
    return "" if content is None else str(content)


def has_tool_calls(messages: list[Message]) -> bool:
    """Whether any message calls a tool or carries a tool's result."""
    for message in messages:
        if message.get("tool_calls") or message.get("role") == "tool":
            return True
    return False


def row_has_tools(row: dict[str, Any]) -> bool:
    """Whether a row offers tools (`tools`) or holds a tool step: what the tool metrics, the judge's tool_use
    criterion and export's typed tool fields are for."""
    if row.get("tools"):
        return True
    turns = row.get("conversations")
    return type(turns) is list and has_tool_calls([t for t in turns if type(t) is dict])


def view_row_problem(row: Any) -> str | None:
    """What keeps a parsed row from being shown: it must be an object with a list of messages (or a pair)."""
    if type(row) is not dict:
        return f"expected a JSON object, got {json_type(row)}"
    found = False
    for key in MESSAGE_LISTS:
        value = row.get(key)
        if value is None:
            continue
        if type(value) is not list and not (key == "prompt" and type(value) is str):
            return f"{key}: expected a list of messages, got {json_type(value)}"
        found = found or bool(value)
    if found or row.get("chosen") is not None or row.get("rejected") is not None:
        return None
    return "conversations: expected a list of messages (or chosen/rejected answers)"
