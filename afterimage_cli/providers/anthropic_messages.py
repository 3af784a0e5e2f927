"""Our OpenAI-style requests in the Anthropic Messages API's shape, and the schemas its structured output takes.

The Messages API has no `system` role (the system prompt is a top-level field), wants the conversation to
open with a user turn and to alternate, and names some parameters differently; a schema for its JSON output
must be strict (closed objects, none of the constraints its constrained decoding cannot enforce). Tools are
`{name, description, input_schema}`; an assistant's tool calls are `tool_use` blocks (input an object), and
tool results are `tool_result` blocks of the user turn that follows (one turn for all results of a step).
"""

from __future__ import annotations

from typing import Any

from ..errors import ProviderError
from .base import Messages
from .tool_calls import arguments_object, calls_of, forced_name, function_of

# What opens a conversation whose first turn is the assistant's (the simulated user speaks as the assistant,
# so its first request opens with the opening it is answering): the API refuses a first turn that is not the
# user's. The same placeholder litellm inserts (its modify_params).
OPENING_PLACEHOLDER = "."
# OpenAI-protocol parameters the Messages API has no field for, dropped as litellm drops them (drop_params),
# so a model block behaves the same through either transport.
OPENAI_ONLY = frozenset(
    {"seed", "n", "frequency_penalty", "presence_penalty", "logit_bias", "logprobs", "top_logprobs"}
    | {"parallel_tool_calls", "response_format"}
)
SAMPLING = frozenset({"temperature", "top_p", "top_k"})
# JSON Schema keywords the API's constrained decoding refuses (400). The answer is still validated against
# the full schema (structured.parse_structured), so a value that breaks one of them is retried like any other.
UNSUPPORTED_KEYWORDS = frozenset(
    {"minItems", "maxItems", "uniqueItems", "contains", "minContains", "maxContains", "prefixItems"}
    | {"minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "multipleOf", "minLength", "maxLength"}
    | {"minProperties", "maxProperties", "patternProperties", "propertyNames", "dependentRequired"}
    | {"dependentSchemas", "unevaluatedProperties", "if", "then", "else", "not"}
)


def _blocks(content: Any) -> list[dict[str, Any]]:
    """A message content as content blocks: a string is one text block; OpenAI's text parts are the same
    shape as Anthropic's, and native Anthropic blocks pass through."""
    if isinstance(content, str):
        return [{"type": "text", "text": content}]
    if isinstance(content, list):
        return [dict(part) for part in content if isinstance(part, dict)]
    return [{"type": "text", "text": "" if content is None else str(content)}]


def _text_of(content: Any) -> str:
    if isinstance(content, str):
        return content
    return "\n\n".join(str(b.get("text", "")) for b in _blocks(content) if b.get("type") == "text")


def _tool_use_turn(message: dict[str, Any]) -> list[dict[str, Any]]:
    """An assistant message with tool calls as blocks: its text (if any; the API refuses an empty text
    block), then one tool_use block per call."""
    content = message.get("content")
    blocks = _blocks(content) if _text_of(content) else []
    for call in calls_of(message):
        blocks.append(
            {"type": "tool_use", "id": call["id"], "name": call["name"], "input": arguments_object(call["arguments"])}
        )
    return blocks


def _tool_result(message: dict[str, Any]) -> list[dict[str, Any]]:
    """A `tool` message as the tool_result block of a user turn."""
    block = {
        "type": "tool_result",
        "tool_use_id": str(message.get("tool_call_id") or ""),
        "content": _text_of(message.get("content")),
    }
    return [block]


def split_messages(messages: Messages, model: str) -> tuple[str | None, list[dict[str, Any]]]:
    """(the system prompt, the turns): system messages are joined into the top-level field, turns of the same
    role in a row become one (their blocks in order: a step's tool results land in one user turn), and a
    conversation opening with the assistant gets a placeholder user turn first. Only `role` and `content`
    are sent: the API refuses other keys."""
    system: list[str] = []
    turns: list[dict[str, Any]] = []
    for message in messages:
        role, content = message.get("role"), message.get("content")
        if role == "system":
            system.append(_text_of(content))
            continue
        if role == "tool":
            role, content = "user", _tool_result(message)
        elif role == "assistant" and message.get("tool_calls"):
            content = _tool_use_turn(message)
        if role not in ("user", "assistant"):
            raise ProviderError(
                f"{model}: the Anthropic Messages API takes system, user, assistant and tool turns, not {role!r}",
                retryable=False,
                kind="bad_request",
            )
        if turns and turns[-1]["role"] == role:
            previous = turns[-1]
            previous["content"] = _blocks(previous["content"]) + _blocks(content)
        else:
            turns.append({"role": role, "content": content if isinstance(content, str) else _blocks(content)})
    if not turns or turns[0]["role"] != "user":
        turns.insert(0, {"role": "user", "content": OPENING_PLACEHOLDER})
    joined = "\n\n".join(part for part in system if part)
    return joined or None, turns


def translate_params(params: dict[str, Any], *, sampling: bool) -> dict[str, Any]:
    """Request parameters under the Messages API's names (`stop` → `stop_sequences`, `user` →
    `metadata.user_id`, `reasoning_effort` → `output_config.effort`, `max_completion_tokens` → `max_tokens`);
    OpenAI-only ones dropped, and sampling ones too for a model that no longer takes them (`sampling`)."""
    out: dict[str, Any] = {}
    for name, value in params.items():
        if name in OPENAI_ONLY or (name in SAMPLING and not sampling):
            continue
        if name == "stop":
            out["stop_sequences"] = [value] if isinstance(value, str) else list(value)
        elif name == "user":
            out["metadata"] = {**out.get("metadata", {}), "user_id": str(value)}
        elif name == "reasoning_effort":
            out["output_config"] = {**out.get("output_config", {}), "effort": value}
        elif name == "max_completion_tokens":
            out["max_tokens"] = value
        elif isinstance(value, dict) and isinstance(out.get(name), dict):
            out[name] = {**out[name], **value}
        else:
            out[name] = value
    return out


def anthropic_tools(tools: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """OpenAI-style tools as the Messages API's: {name, description, input_schema}."""
    out = []
    for tool in tools:
        function = function_of(tool)
        entry = {"name": function["name"], "input_schema": function["parameters"]}
        if function["description"]:
            entry["description"] = function["description"]
        out.append(entry)
    return out


def anthropic_tool_choice(choice: Any, *, parallel: Any = None, thinking: bool = False) -> dict[str, Any] | None:
    """An OpenAI tool_choice as the Messages API's: auto, required → any, none, a named function → tool.
    `parallel_tool_calls: false` becomes disable_parallel_tool_use; with thinking on, the API refuses a forced
    choice, so it becomes auto (the model is still offered the tools)."""
    name = forced_name(choice)
    if name is not None:
        out: dict[str, Any] = {"type": "tool", "name": name}
    elif choice == "required":
        out = {"type": "any"}
    elif choice == "none":
        return {"type": "none"}
    elif choice in (None, "auto"):
        out = {"type": "auto"}
    else:
        raise ProviderError(
            f"tool_choice {choice!r} is not auto, required, none or a named function",
            retryable=False,
            kind="bad_request",
        )
    if thinking and out["type"] in ("any", "tool"):
        out = {"type": "auto"}
    if parallel is False:
        out["disable_parallel_tool_use"] = True
    return out if (choice is not None or parallel is False) else None


def thinking_enabled(payload: dict[str, Any]) -> bool:
    """Whether the request turns on extended thinking (the API then refuses a forced tool choice)."""
    thinking = payload.get("thinking")
    return isinstance(thinking, dict) and thinking.get("type") in ("enabled", "adaptive")


def strict_schema(node: Any) -> Any:
    """A JSON Schema as the API's JSON output takes it: closed objects (`additionalProperties: false`),
    `oneOf` as `anyOf`, and without the keywords it cannot enforce (UNSUPPORTED_KEYWORDS)."""
    if isinstance(node, list):
        return [strict_schema(item) for item in node]
    if not isinstance(node, dict):
        return node
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key in UNSUPPORTED_KEYWORDS:
            continue
        if key in ("properties", "$defs", "definitions") and isinstance(value, dict):
            out[key] = {name: strict_schema(sub) for name, sub in value.items()}
        elif key in ("items", "anyOf", "oneOf", "allOf"):
            out["anyOf" if key == "oneOf" else key] = strict_schema(value)
        else:
            out[key] = value
    if out.get("type") == "object":
        out["additionalProperties"] = False
    return out


def is_object_schema(schema: dict[str, Any]) -> bool:
    """Whether a schema describes a JSON object (a tool's input must be one)."""
    return schema.get("type") == "object" or ("properties" in schema and "type" not in schema)
