"""The body of a Gemini generateContent call, from OpenAI-style messages and a model block's params.

Model blocks say `temperature`, `max_tokens`, `top_p`, `stop`, `reasoning_effort` … whichever transport
they go through; here those become Gemini's `generationConfig` names, as litellm maps them, so switching
a model between `provider: litellm` and the direct transport asks the same of the model.
"""

from __future__ import annotations

import functools
import re
from typing import Any

from ..errors import ConfigError, ProviderError
from .base import Messages
from .gemini_schema import gemini_json_schema, gemini_schema
from .gemini_tools import call_parts, function_declarations, response_part, tool_config
from .structured import Schema
from .tool_calls import calls_of, tool_options

# OpenAI-style names → generationConfig names. A param named otherwise goes into generationConfig as
# it is (Gemini's own names: topK, candidateCount, responseLogprobs, …) and the API judges it.
GENERATION_NAMES = {
    "temperature": "temperature",
    "max_tokens": "maxOutputTokens",
    "max_completion_tokens": "maxOutputTokens",
    "top_p": "topP",
    "top_k": "topK",
    "seed": "seed",
    "presence_penalty": "presencePenalty",
    "frequency_penalty": "frequencyPenalty",
}
# Params that belong beside generationConfig, not in it.
TOP_LEVEL_NAMES = {
    "safety_settings": "safetySettings",
    "safetySettings": "safetySettings",
    "cached_content": "cachedContent",
    "cachedContent": "cachedContent",
}
THINKING_NAMES = ("reasoning_effort", "thinking", "thinking_config", "thinkingConfig")
# litellm's thinking budgets per reasoning_effort for models that take a budget (Gemini 2.x).
EFFORT_BUDGETS = {"minimal": 128, "low": 1024, "medium": 2048, "high": 4096}
_GENERATION_MAJOR = re.compile(r"gemini-(\d+)")
# Models that read JSON Schema itself (responseJsonSchema), as litellm decides it: Gemini 2.0 and later.
_JSON_SCHEMA_MODELS = re.compile(r"gemini-(?:[2-9]|[1-9]\d+)[.-]")


def _text(content: Any, role: str) -> str:
    """A message's text; the transport sends text only (images go through `provider: litellm`)."""
    if isinstance(content, str):
        return content
    if content is None:
        return ""
    if isinstance(content, list) and all(isinstance(p, dict) and p.get("type", "text") == "text" for p in content):
        return "".join(str(p.get("text") or "") for p in content)
    raise ProviderError(
        f"a {role} message holds content other than text, which the direct Gemini transport does not send: "
        "set provider: litellm on this model",
        retryable=False,
        kind="bad_request",
    )


def contents_of(
    messages: Messages, signatures: dict[str, str] | None = None, needs_signature: bool = False
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(contents, system parts): roles user/model, consecutive turns of one role merged into one content (so a
    step's function responses share one user turn, as the API wants), system messages lifted into the system
    instruction; tool calls become functionCall parts, tool results functionResponse parts."""
    system: list[dict[str, Any]] = []
    contents: list[dict[str, Any]] = []
    names: dict[str, str] = {}
    for message in messages:
        role = str(message.get("role") or "user")
        if role == "assistant" and message.get("tool_calls"):
            names.update((call["id"], call["name"]) for call in calls_of(message))
            parts = call_parts(message, signatures or {}, needs_signature)
        elif role == "tool":
            parts = [response_part(message, names)]
        else:
            parts = [{"text": _text(message.get("content"), role)}]
        if role == "system":
            system.extend(parts)
            continue
        wire = "model" if role == "assistant" else "user"
        if contents and contents[-1]["role"] == wire:
            contents[-1]["parts"].extend(parts)
        else:
            contents.append({"role": wire, "parts": parts})
    if not contents:  # Gemini needs a turn to answer: a lone system prompt becomes it
        return [{"role": "user", "parts": system}], []
    return contents, system


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(word.title() for word in rest)


def thinking_config(settings: dict[str, Any], model: str) -> dict[str, Any] | None:
    """generationConfig.thinkingConfig from `thinking_config` (Gemini's own fields, snake or camel case),
    `reasoning_effort` (minimal/low/medium/high/none) or `thinking` ({type: enabled, budget_tokens: N});
    thoughts are asked for whenever thinking is on, so they land in reasoning_content."""
    native = settings.get("thinking_config", settings.get("thinkingConfig"))
    if isinstance(native, dict):
        return {_camel(k): v for k, v in native.items()}
    effort = settings.get("reasoning_effort")
    effort = effort.get("effort") if isinstance(effort, dict) else effort
    if isinstance(effort, str):
        major = _GENERATION_MAJOR.search(model)
        if effort in ("none", "disable"):
            return {"thinkingBudget": 0, "includeThoughts": False} if not major or int(major[1]) < 3 else None
        if major and int(major[1]) >= 3:  # Gemini 3 takes a level, not a budget
            return {"thinkingLevel": "low" if effort == "minimal" else effort, "includeThoughts": True}
        budget = 512 if effort == "minimal" and "flash-lite" in model else EFFORT_BUDGETS.get(effort)
        if budget is None:
            raise ConfigError(
                f"{model}: params.reasoning_effort {effort!r} is not one of minimal, low, medium, high, none"
            )
        return {"thinkingBudget": budget, "includeThoughts": True}
    thinking = settings.get("thinking")
    if isinstance(thinking, dict):
        if thinking.get("type") != "enabled":
            return {"includeThoughts": False}
        budget = thinking.get("budget_tokens")
        return {"includeThoughts": True, **({"thinkingBudget": budget} if isinstance(budget, int) else {})}
    return None


def _schema_field(schema: Schema, json_schema: bool) -> dict[str, Any]:
    if json_schema:
        return {"responseJsonSchema": gemini_json_schema(schema)}
    return {"responseSchema": gemini_schema(schema)}


_class_schema_field = functools.lru_cache(maxsize=64)(_schema_field)


def reads_json_schema(model: str) -> bool:
    """Whether the model takes JSON Schema itself (Gemini 2.0 and later) rather than the OpenAPI subset."""
    return bool(_JSON_SCHEMA_MODELS.search(model.lower()))


def needs_thought_signatures(model: str) -> bool:
    """Gemini 3 and later refuse a dialog whose current turn's function calls lack their thought signature."""
    major = _GENERATION_MAJOR.search(model)
    return bool(major) and int(major[1]) >= 3  # type: ignore[index]


def response_schema(schema: Schema, model: str) -> dict[str, Any]:
    """The generationConfig field asking for JSON that fits `schema`: JSON Schema itself for Gemini 2.0 and
    later, the OpenAPI subset for older models. A pydantic class is converted once, not once per call."""
    json_schema = reads_json_schema(model)
    return _schema_field(schema, json_schema) if isinstance(schema, dict) else _class_schema_field(schema, json_schema)


def request_body(
    messages: Messages,
    settings: dict[str, Any],
    model: str,
    schema: Schema | None = None,
    signatures: dict[str, str] | None = None,
) -> dict[str, Any]:
    """The JSON body of one generateContent call (`signatures`: thought signatures of earlier calls by id)."""
    tools, tool_choice, settings = tool_options(settings)
    contents, system = contents_of(messages, signatures, needs_thought_signatures(model))
    body: dict[str, Any] = {"contents": contents}
    if system:
        body["systemInstruction"] = {"parts": system}
    if tools:
        body["tools"] = function_declarations(tools, reads_json_schema(model))
        config = tool_config(tool_choice)
        if config is not None:
            body["toolConfig"] = config
    generation: dict[str, Any] = {}
    for name, value in settings.items():
        if value is None or name in THINKING_NAMES or name == "response_format":
            continue
        if name in TOP_LEVEL_NAMES:
            body[TOP_LEVEL_NAMES[name]] = value
        elif name == "stop":
            generation["stopSequences"] = [value] if isinstance(value, str) else list(value)
        else:
            generation[GENERATION_NAMES.get(name, name)] = value
    thinking = thinking_config(settings, model)
    if thinking is not None:
        generation["thinkingConfig"] = thinking
    if schema is not None:
        generation["responseMimeType"] = "application/json"
        generation.update(response_schema(schema, model))
    if generation:
        body["generationConfig"] = generation
    return body
