"""The Gemini API routes of the fake server: POST /v1beta/models/{model}:generateContent (and /v1/…) and GET
/v1beta/models.

They speak Gemini's wire format (camelCase JSON as google-genai's `types.GenerateContentResponse` reads it,
snake_case request fields accepted too, as the API's proto parser does) and reuse the fake server's knobs
through its own pipeline (`_handle`, `_content`, `_cut`): latency, 429/500 rates, garbage, outages, hangs,
`reasoning` (thought parts), `context_tokens` (400 INVALID_ARGUMENT "input token count … exceeds the
maximum number of tokens allowed"), `filter_words` (a prompt blocked by promptFeedback.blockReason SAFETY),
`unprocessable_words` (400 INVALID_ARGUMENT), truncation (finishReason MAX_TOKENS), bad structured output,
and `cached_share` (that share of the prompt reported as cachedContentTokenCount). With functionDeclarations
offered the model calls tools as tests/fake_tools.py decides (functionCall parts, no ids, as the Gemini API
answers), and a turn of functionResponse parts is answered in text quoting them; like the real API it refuses
(400) a turn whose function responses do not match the previous turn's function calls in number. Errors are Google's
`{"error": {code, message, status, details}}`: a 429 says how long to wait in a RetryInfo detail, not a
header, and a rejected key is 400 INVALID_ARGUMENT with reason API_KEY_INVALID, as the real API answers.
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Any

import orjson
from aiohttp import web

from tests import fake_tools, fakeserver

if TYPE_CHECKING:
    from tests.fakeserver import FakeOpenAIServer

# google.rpc.Code names of the HTTP statuses the knobs produce.
STATUS_NAMES = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    422: "INVALID_ARGUMENT",
    429: "RESOURCE_EXHAUSTED",
    500: "INTERNAL",
    503: "UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
}
MESSAGES = {
    400: "Request contains an invalid argument.",
    403: "The caller does not have permission",
    404: "models/unknown is not found for API version v1beta, or is not supported for generateContent.",
    429: "Resource has been exhausted (e.g. check quota).",
    500: "An internal error has occurred. Please retry or report in https://developers.generativeai.google/guide/troubleshooting",
    503: "The model is overloaded. Please try again later.",
}
KEY_INVALID = "API key not valid. Please pass a valid API key."


def add_routes(server: FakeOpenAIServer, app: web.Application) -> None:
    """Serve the Gemini API beside the OpenAI one."""
    for version in ("v1beta", "v1"):  # the API serves both; google-genai 3.x asks v1 by default
        app.router.add_post(f"/{version}/models/{{target}}", functools.partial(_generate, server))
    app.router.add_get("/v1beta/models", functools.partial(_models, server))


def error_response(server: FakeOpenAIServer, status: int, message: str | None = None) -> web.Response:
    """Google's error body for a status; a 401 knob (a rejected key) answers as Gemini does: 400."""
    details: list[dict[str, Any]] = []
    if status == 401:
        status, message = 400, KEY_INVALID
        details.append(
            {
                "@type": "type.googleapis.com/google.rpc.ErrorInfo",
                "reason": "API_KEY_INVALID",
                "domain": "googleapis.com",
            }
        )
    if status == 429:
        violation = {"quotaMetric": "generativelanguage.googleapis.com/generate_content_requests", "quotaValue": "10"}
        details.append({"@type": "type.googleapis.com/google.rpc.QuotaFailure", "violations": [violation]})
        if server.retry_after is not None:
            details.append(
                {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": f"{server.retry_after:g}s"}
            )
    error = {
        "code": status,
        "message": message or MESSAGES.get(status, f"Error {status}."),
        "status": STATUS_NAMES.get(status, "UNKNOWN"),
    }
    if details:
        error["details"] = details
    return fakeserver._json(orjson.dumps({"error": error}), status)


def _field(data: Any, camel: str, snake: str) -> Any:
    """A request field under its JSON name or its proto name (the API reads both)."""
    if not isinstance(data, dict):
        return None
    return data[camel] if camel in data else data.get(snake)


def _parts_text(content: Any) -> str:
    parts = _field(content, "parts", "parts") or []
    return "".join(str(p.get("text") or "") for p in parts if isinstance(p, dict))


def json_schema(node: Any) -> Any:
    """Gemini's OpenAPI-subset schema as JSON Schema (lower-case types) for the server's sampler."""
    if isinstance(node, list):
        return [json_schema(item) for item in node]
    if not isinstance(node, dict):
        return node
    out = {k: json_schema(v) for k, v in node.items() if k not in ("nullable", "propertyOrdering")}
    if isinstance(out.get("type"), str):
        out["type"] = out["type"].lower()
    return out


def _turn_messages(content: Any) -> list[dict[str, Any]]:
    """One content's messages in OpenAI's form: its text, its function calls, each function response."""
    role = "assistant" if _field(content, "role", "role") == "model" else "user"
    parts = [p for p in _field(content, "parts", "parts") or () if isinstance(p, dict)]
    calls = [_field(p, "functionCall", "function_call") for p in parts]
    responses = [_field(p, "functionResponse", "function_response") for p in parts]
    messages: list[dict[str, Any]] = [
        {"role": "tool", "name": r.get("name"), "content": orjson.dumps(r.get("response")).decode()}
        for r in responses
        if isinstance(r, dict)
    ]
    text = _parts_text(content)
    if text or not messages:
        message: dict[str, Any] = {"role": role, "content": text}
        wire = [
            {"type": "function", "function": {"name": c.get("name"), "arguments": orjson.dumps(c.get("args")).decode()}}
            for c in calls
            if isinstance(c, dict)
        ]
        if wire:
            message["tool_calls"] = wire
        messages.append(message)
    return messages


def _declared_tools(body: dict[str, Any]) -> list[dict[str, Any]]:
    """The functionDeclarations as OpenAI-style functions, parameters as JSON Schema."""
    tools = []
    for entry in body.get("tools") or ():
        for declaration in _field(entry, "functionDeclarations", "function_declarations") or ():
            schema = _field(declaration, "parametersJsonSchema", "parameters_json_schema")
            if schema is None:
                schema = json_schema(declaration.get("parameters"))
            tools.append({"name": declaration.get("name"), "parameters": schema})
    return tools


def _tool_choice(body: dict[str, Any]) -> str:
    config = _field(_field(body, "toolConfig", "tool_config"), "functionCallingConfig", "function_calling_config")
    mode = str(_field(config, "mode", "mode") or "AUTO")
    return {"ANY": "required", "NONE": "none"}.get(mode, "auto")


def call_mismatch(body: dict[str, Any]) -> str | None:
    """The real API's 400 for function responses that do not answer the previous turn's calls one to one."""
    calls = 0
    for content in body.get("contents") or ():
        parts = [p for p in _field(content, "parts", "parts") or () if isinstance(p, dict)]
        responses = sum(1 for p in parts if _field(p, "functionResponse", "function_response"))
        if (calls or responses) and responses != calls:
            return (
                "Please ensure that the number of function response parts is equal to the number of function "
                "call parts of the function call turn."
            )
        calls = sum(1 for p in parts if _field(p, "functionCall", "function_call"))
    return None


def chat_view(model: str, body: dict[str, Any]) -> dict[str, Any]:
    """The request as an OpenAI chat body, so the server's own answer logic serves both protocols."""
    messages = []
    system = _field(body, "systemInstruction", "system_instruction")
    if system:
        messages.append({"role": "system", "content": _parts_text(system)})
    for content in body.get("contents") or ():
        messages.extend(_turn_messages(content))
    config = _field(body, "generationConfig", "generation_config") or {}
    view: dict[str, Any] = {"model": model, "messages": messages}
    tools = _declared_tools(body)
    if tools:
        view.update(tools=tools, tool_choice=_tool_choice(body))
    limit = _field(config, "maxOutputTokens", "max_output_tokens")
    if limit is not None:
        view["max_tokens"] = limit
    schema = _field(config, "responseJsonSchema", "response_json_schema")
    if schema is None:
        schema = json_schema(_field(config, "responseSchema", "response_schema"))
    if isinstance(schema, dict):
        view["response_format"] = {"type": "json_schema", "json_schema": {"schema": schema}}
    return view


async def _generate(server: FakeOpenAIServer, request: web.Request) -> web.Response:
    model, _, method = request.match_info["target"].partition(":")
    fail = functools.partial(error_response, server)
    if method != "generateContent":
        return fail(404, f"Method {method!r} is not served by this fake.")
    return await server._handle(request, lambda body: _answer(server, model, body), error=fail, model=model)


def _answer(server: FakeOpenAIServer, model: str, body: dict[str, Any]) -> web.Response:
    """Refuse this one request for what it says (context, safety, invalid argument), or answer it."""
    mismatch = call_mismatch(body)
    if mismatch:
        server.stats["bad_request"] += 1
        return error_response(server, 400, mismatch)
    view = chat_view(model, body)
    messages = view["messages"]
    texts = [m["content"] for m in messages]
    prompt_tokens = sum(fakeserver._tokens(t) for t in texts)
    if server.context_tokens is not None and prompt_tokens > server.context_tokens:
        server.stats["context_exceeded"] += 1
        message = (
            f"The input token count ({prompt_tokens}) exceeds the maximum number of tokens allowed "
            f"({server.context_tokens})."
        )
        return error_response(server, 400, message)
    joined = " ".join(texts).lower()
    usage: dict[str, Any] = {"promptTokenCount": prompt_tokens}
    if any(word.lower() in joined for word in server.filter_words):
        server.stats["filtered"] += 1
        server.stats["prompt_tokens"] += prompt_tokens
        ratings = [{"category": "HARM_CATEGORY_DANGEROUS_CONTENT", "probability": "HIGH", "blocked": True}]
        feedback = {"blockReason": "SAFETY", "safetyRatings": ratings}
        payload = {"promptFeedback": feedback, "usageMetadata": {**usage, "totalTokenCount": prompt_tokens}}
        return fakeserver._json(orjson.dumps({**payload, "modelVersion": model}))
    if any(word.lower() in joined for word in server.unprocessable_words):
        server.stats["unprocessable"] += 1
        return error_response(server, 400)
    calls = fake_tools.calls_for(server, view.get("tools"), view.get("tool_choice"), messages, as_text=False)
    if calls:
        content, finish = "".join(orjson.dumps(c["arguments"]).decode() for c in calls), "stop"
    else:
        content, finish = server._cut(view, server._content(view, messages))
    parts: list[dict[str, Any]] = []
    thoughts = 0
    if server.reasoning:
        thought = f"Thinking about {len(messages)} messages before answering."
        thoughts = fakeserver._tokens(thought)
        parts.append({"text": thought, "thought": True})
    if calls:
        parts.extend({"functionCall": {"name": c["name"], "args": c["arguments"]}} for c in calls)
    else:
        parts.append({"text": content})
    completion_tokens = fakeserver._tokens(content)
    cached = int(prompt_tokens * server.cached_share)
    usage.update(candidatesTokenCount=completion_tokens, totalTokenCount=prompt_tokens + completion_tokens + thoughts)
    usage["promptTokensDetails"] = [{"modality": "TEXT", "tokenCount": prompt_tokens}]
    if thoughts:
        usage["thoughtsTokenCount"] = thoughts
    if cached:
        usage["cachedContentTokenCount"] = cached
    server._ids += 1
    server.stats["ok"] += 1
    server.stats["prompt_tokens"] += prompt_tokens
    server.stats["completion_tokens"] += completion_tokens + thoughts
    server.stats["cached_tokens"] += cached
    candidate = {
        "content": {"parts": parts, "role": "model"},
        "finishReason": "MAX_TOKENS" if finish == "length" else "STOP",
        "index": 0,
    }
    payload = {
        "candidates": [candidate],
        "usageMetadata": usage,
        "modelVersion": model if server.echo_model else server.model_name,
        "responseId": f"fake-gemini-{server._ids}",
    }
    return fakeserver._json(orjson.dumps(payload))


async def _models(server: FakeOpenAIServer, request: web.Request) -> web.Response:
    """GET /v1beta/models: the one model the server serves, as Gemini lists models."""
    server.stats["model_lists"] += 1
    if server.models_status is not None:
        return error_response(server, server.models_status)
    entry = {
        "name": f"models/{server.model_name}",
        "version": "001",
        "displayName": server.model_name,
        "inputTokenLimit": server.context_tokens or 1048576,
        "outputTokenLimit": 65536,
        "supportedGenerationMethods": ["generateContent", "countTokens"],
    }
    return fakeserver._json(orjson.dumps({"models": [entry]}))
