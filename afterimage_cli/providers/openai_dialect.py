"""What the OpenAI-protocol hosts need said their own way, said as litellm 1.106.2 says it to them, so a model
called through the direct transport gets the request (and its answer is read) exactly as through litellm.
tests/test_openai_parity.py sends the same calls both ways and compares the bodies the server received.

Only what afterimage's calls carry is translated (messages of text, temperature, max_tokens, a JSON-Schema
response_format); any other `params` of a model block go to the server as written."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlsplit

from .pricing import model_entry, price_map

# Azure OpenAI's api-version when none is configured: litellm's AZURE_DEFAULT_API_VERSION (tests/
# test_transport_table.py checks they agree); its chat completions and its batch API both take it.
AZURE_API_VERSION = "2025-02-01-preview"

# What OpenAI's o-series and gpt-5 models refuse (litellm drops it, as drop_params is on); gpt-5.1 and later
# take the sampling ones while reasoning is off (reasoning_effort "none", asked for or the model's default).
O_SERIES_UNSUPPORTED = ("top_p", "presence_penalty", "frequency_penalty", "logprobs", "top_logprobs")
GPT5_UNSUPPORTED = ("presence_penalty", "frequency_penalty", "stop", "logit_bias")
GPT5_SAMPLING = ("logprobs", "top_logprobs", "top_p")
# The tool litellm forces a Groq model without native JSON-Schema output to call, its arguments the answer.
JSON_TOOL = "json_tool_call"
_O_SERIES_NAME = re.compile(r"o\d")


def _supports(prefix: str, model: str, capability: str) -> bool:
    """Whether the price map says 'prefix/model' (or the bare model) has a capability, as litellm reads it."""
    entries = (model_entry(f"{prefix}/{model}"), model_entry(model))
    return any(entry.get(capability) is True for entry in entries)


def is_o_series(prefix: str, model: str) -> bool:
    """An o1/o3/o4 model: for OpenAI, one the price map lists as an OpenAI model; on Azure, any deployment
    whose name says so (litellm's two rules)."""
    if prefix == "azure":
        return any(tag in model for tag in ("o1", "o3", "o4", "o_series/"))
    entry = price_map().get(model)
    listed = isinstance(entry, dict) and entry.get("litellm_provider") == "openai"
    return bool(_O_SERIES_NAME.match(model)) and listed


def is_gpt5(model: str) -> bool:
    """A gpt-5 (or later) reasoning model; gpt-5-chat is a chat model."""
    return ("gpt-5" in model or "gpt-6" in model) and "gpt-5-chat" not in model


def _reasoning_off(model: str, payload: dict[str, Any]) -> bool:
    """Whether a gpt-5 call's reasoning effort is "none" (asked for, or the model's default in the map), when
    a model that allows it samples like a chat model."""
    if not _supports("openai", model, "supports_none_reasoning_effort"):
        return False
    effort = payload.get("reasoning_effort")
    effort = effort.get("effort") if isinstance(effort, dict) else effort
    if effort is None:
        effort = model_entry(model).get("default_reasoning_effort")
    return effort == "none"


def _openai_reasoning(prefix: str, model: str, payload: dict[str, Any]) -> dict[str, Any]:
    """An OpenAI (or Azure) reasoning model's request: max_completion_tokens instead of max_tokens, the
    default temperature only, no sampling penalties (o-series), and on o-series models the map says take
    no system message, the system prompt as a user message."""
    o_series = is_o_series(prefix, model)
    if not (o_series or is_gpt5(model)):
        return payload
    out = dict(payload)
    if "max_tokens" in out:
        out["max_completion_tokens"] = out.pop("max_tokens")
    sampling_ok = not o_series and _reasoning_off(model, out)
    if out.get("temperature") is not None and out["temperature"] != 1 and not sampling_ok:
        del out["temperature"]
    dropped = O_SERIES_UNSUPPORTED if o_series else GPT5_UNSUPPORTED + (() if sampling_ok else GPT5_SAMPLING)
    for name in dropped:
        out.pop(name, None)
    if o_series and not _supports(prefix, model, "supports_system_messages"):
        out["messages"] = [
            {"content": m["content"], "role": "user"} if m.get("role") == "system" else m for m in out["messages"]
        ]
    if prefix == "azure" and model.startswith("o_series/"):
        out["model"] = model.removeprefix("o_series/")
    return out


def is_azure_v1(api_base: str) -> bool:
    """Whether an Azure resource URL is its /openai/v1 API: the OpenAI protocol itself (routes under it as
    OpenAI's, no deployment in the path, no api-version), rather than the classic deployment routes."""
    return "/openai/v1" in urlsplit(api_base).path


def fireworks_model(model: str) -> str:
    """The resource name Fireworks serves a short model name under (litellm's rule)."""
    if model.startswith(("accounts/", "FW-")) or "#" in model:
        return model
    if model.startswith(("routers/", "models/")):
        return f"accounts/fireworks/{model}"
    if model.endswith("-fast") or model in ("firerouter", "auto", "auto-instant") or model.startswith("firerouter/"):
        return f"accounts/fireworks/routers/{model}"
    return f"accounts/fireworks/models/{model}"


def answers_by_tool(prefix: str, model: str) -> bool:
    """Whether structured output goes through a forced tool call: Groq models without native JSON-Schema output."""
    return prefix == "groq" and not _supports("groq", model, "supports_response_schema")


def adapt_request(prefix: str, model: str, payload: dict[str, Any]) -> dict[str, Any]:
    """The body `prefix` wants for a chat call to `model` (the served name), as litellm sends it."""
    if prefix in ("openai", "azure"):
        return _openai_reasoning(prefix, model, payload)
    if prefix == "fireworks_ai":
        return {**payload, "model": fireworks_model(model)}
    if prefix == "openrouter" and "usage" not in payload:
        return {**payload, "usage": {"include": True}}  # OpenRouter says the cost only when asked
    if prefix == "groq" and answers_by_tool(prefix, model) and "response_format" in payload:
        out = dict(payload)
        schema = out.pop("response_format")["json_schema"]["schema"]
        json_tool = {"type": "function", "function": {"name": JSON_TOOL, "parameters": schema}}
        out["tools"] = [*(out.get("tools") or ()), json_tool]
        out["tool_choice"] = {"type": "function", "function": {"name": JSON_TOOL}}
        return out
    return payload


def answer_text(message: dict[str, Any]) -> tuple[Any, str | None]:
    """(text, reasoning) of an answer message: a forced JSON tool's arguments stand for the text; a list of
    content blocks (Mistral's Magistral) gives its text blocks and its thinking blocks as the reasoning."""
    content = message.get("content")
    reasoning = message.get("reasoning_content") or message.get("reasoning")
    calls = message.get("tool_calls")
    if content is None and isinstance(calls, list) and len(calls) == 1:
        function = calls[0].get("function") if isinstance(calls[0], dict) else None
        if isinstance(function, dict) and function.get("name") == JSON_TOOL:
            content = function.get("arguments")
    if isinstance(content, list):
        blocks = [b for b in content if isinstance(b, dict)]
        thinking = [
            part.get("text", "")
            for b in blocks
            if b.get("type") == "thinking"
            for part in b.get("thinking") or ()
            if isinstance(part, dict) and part.get("type") == "text"
        ]
        content = "".join(b.get("text", "") for b in blocks if b.get("type") == "text")
        reasoning = reasoning or "\n".join(thinking) or None
    return content, reasoning
